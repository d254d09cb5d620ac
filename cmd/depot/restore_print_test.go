package main

import (
	"strings"
	"testing"
	"time"

	"depot/nameserver/nsclient"
)

func TestPrintRestore(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  nsclient.RestoreResult
		want []string
		warn bool
	}{
		{"Whole", nsclient.RestoreResult{BackupTime: time.Now().Add(-10 * time.Second), Age: 10 * time.Second, DeleteGrace: time.Minute, Whole: true},
			[]string{"10s old", "delete grace 1m0s"}, false},
		{"Old", nsclient.RestoreResult{BackupTime: time.Now().Add(-time.Hour), Age: time.Hour, DeleteGrace: time.Minute, Warning: "the backup is 1h0m0s old"},
			[]string{"1h0m0s old"}, true},
		{"NoTime", nsclient.RestoreResult{DeleteGrace: time.Minute, Warning: "the backup records no time"},
			[]string{"backup time unknown"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			printRestore(&b, "ns.backup", tc.res)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output %q lacks %q", b.String(), w)
				}
			}
			if got := strings.Contains(b.String(), "WARNING: "); got != tc.warn {
				t.Errorf("output %q: warning %v, want %v", b.String(), got, tc.warn)
			}
		})
	}
}
