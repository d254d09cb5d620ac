package membership

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
)

// logWriter turns memberlist's log lines ("[WARN] memberlist: text") into
// slog records at the matching level.
//
// memberlist has no event for suspicion, so the one line that reports this
// node's own failed probe of another ("Suspect <name> has failed, no acks
// received") also marks that node suspect in the view. A later successful
// probe (NotifyPingComplete) or any gossip event clears it.
type logWriter struct {
	m *Membership
}

const suspectPrefix = "Suspect "
const suspectSuffix = " has failed, no acks received"

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\r\n"))
	level := slog.LevelInfo
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{
		{"[DEBUG] ", slog.LevelDebug},
		{"[INFO] ", slog.LevelInfo},
		{"[WARN] ", slog.LevelWarn},
		{"[ERR] ", slog.LevelError},
		{"[ERROR] ", slog.LevelError},
	} {
		if rest, ok := strings.CutPrefix(line, l.tag); ok {
			line, level = rest, l.level
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if rest, ok := strings.CutPrefix(line, suspectPrefix); ok {
		if name, ok := strings.CutSuffix(rest, suspectSuffix); ok {
			w.m.setNamed(name, StateSuspect, "", NodeMeta{}, false)
		}
	}
	// Debug lines from memberlist are plentiful (every stream connection);
	// skip formatting them unless enabled.
	if w.m.logger.Enabled(context.Background(), level) {
		w.m.logger.Log(context.Background(), level, line)
	}
	return len(p), nil
}
