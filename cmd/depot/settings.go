package main

import (
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// Settings: every typed flag is a setting, which an environment variable
// may also give. Both the command line and the environment go through the
// setting's one parse function, and a value it refuses is an error naming
// the setting, the value and what is accepted; nothing falls back to a
// default in silence. The command line wins over the environment, but a
// malformed environment variable is refused even then.

// setting is a flag.Value of type T, parsed by parse, that the environment
// variable env (when not "") sets unless the command line does.
type setting[T any] struct {
	p      *T
	parse  func(string) (T, error)
	show   func(T) string
	env    string
	isBool bool
}

func (s *setting[T]) String() string {
	if s == nil || s.p == nil {
		return ""
	}
	return s.show(*s.p)
}

func (s *setting[T]) Set(v string) error {
	x, err := s.parse(v)
	if err != nil {
		return err
	}
	*s.p = x
	return nil
}

// IsBoolFlag lets a boolean setting be given as a bare -flag.
func (s *setting[T]) IsBoolFlag() bool { return s.isBool }

func (s *setting[T]) envName() string { return s.env }

func (s *setting[T]) check(v string) error { _, err := s.parse(v); return err }

// envSetting is what parseFlags needs of a setting.
type envSetting interface {
	envName() string
	check(string) error
	Set(string) error
}

// settingVar registers a setting in fs that stores into p, def until set.
func settingVar[T any](fs *flag.FlagSet, p *T, name, env string, def T, parse func(string) (T, error), show func(T) string, usage string) {
	*p = def
	fs.Var(&setting[T]{p: p, parse: parse, show: show, env: env}, name, usage)
}

// parseFlags parses args into fs, then gives each setting not on the
// command line the value of its environment variable (unset or empty: the
// default). It reports every malformed environment variable, named with
// its value, the ones overridden by a flag included.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return applyEnv(fs)
}

// applyEnv sets fs's settings from their environment variables (see
// parseFlags), except those set on the command line.
func applyEnv(fs *flag.FlagSet) error {
	onCLI := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCLI[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		s, ok := f.Value.(envSetting)
		if !ok || s.envName() == "" {
			return
		}
		v := os.Getenv(s.envName())
		if v == "" {
			return
		}
		var err error
		if onCLI[f.Name] {
			err = s.check(v)
		} else {
			err = s.Set(v)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", s.envName(), v, err))
		}
	})
	return errors.Join(errs...)
}

// durationVar registers a duration setting; negative durations are refused.
func durationVar(fs *flag.FlagSet, p *time.Duration, name, env string, def time.Duration, usage string) {
	settingVar(fs, p, name, env, def, parseDuration, time.Duration.String, usage)
}

func durationFlag(fs *flag.FlagSet, name, env string, def time.Duration, usage string) *time.Duration {
	p := new(time.Duration)
	durationVar(fs, p, name, env, def, usage)
	return p
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, errors.New("not a duration (e.g. 90s, 10m)")
	}
	if d < 0 {
		return 0, errors.New("a duration must not be negative (e.g. 90s, 10m)")
	}
	return d, nil
}

// sizeVar registers a byte-count setting (see parseSize).
func sizeVar(fs *flag.FlagSet, p *int64, name, env string, def int64, usage string) {
	settingVar(fs, p, name, env, def, parseSize, formatSize, usage)
}

func sizeFlag(fs *flag.FlagSet, name, env string, def int64, usage string) *int64 {
	p := new(int64)
	sizeVar(fs, p, name, env, def, usage)
	return p
}

const sizeHelp = "a number of bytes, or with a unit: 512KiB, 1.5GiB, 5GB (KiB, MiB, GiB, TiB are powers of 1024; kB, MB, GB, TB of 1000)"

// parseSize parses a byte count: a whole number of bytes, or a number with
// a unit as humanize.ParseBytes reads them, in any case and with or
// without the B: binary (KiB, MiB, GiB, TiB: powers of 1024) or decimal
// (kB, MB, GB, TB: powers of 1000). A decimal fraction is allowed when it
// comes to a whole number of bytes ("1.5GiB", not "1.1KiB" nor "0.5");
// negative sizes, digit-group commas and sizes past int64 are refused.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" || strings.ContainsAny(t, ",-+") {
		return 0, fmt.Errorf("not a size: want %s", sizeHelp)
	}
	n, err := humanize.ParseBigBytes(t)
	if err != nil {
		return 0, fmt.Errorf("not a size: want %s", sizeHelp)
	}
	num := t
	if i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }); i >= 0 {
		num = t[:i]
	}
	if strings.Contains(num, ".") {
		exact, ok := new(big.Rat).SetString(num)
		unit, err := humanize.ParseBigBytes("1" + t[len(num):])
		if !ok || err != nil || !exact.Mul(exact, new(big.Rat).SetInt(unit)).IsInt() {
			return 0, fmt.Errorf("not a whole number of bytes: want %s", sizeHelp)
		}
	}
	if !n.IsInt64() {
		return 0, errors.New("too large: at most 8EiB")
	}
	return n.Int64(), nil
}

// formatSize prints n in the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// rateVar registers a request-rate setting in requests per second (see
// parseRate).
func rateVar(fs *flag.FlagSet, p *float64, name, env string, def float64, usage string) {
	settingVar(fs, p, name, env, def, parseRate, formatFloat, usage)
}

// parseRate parses a rate of requests: "200" or "200/s" per second,
// "3000/m" per minute, "50000/h" per hour; not negative.
func parseRate(s string) (float64, error) {
	const want = "want requests per second, not negative: 200, 200/s, 3000/m or 50000/h (0 for no limit)"
	num, per, _ := strings.Cut(strings.TrimSpace(s), "/")
	div := 1.0
	switch strings.TrimSpace(per) {
	case "", "s":
		if strings.Contains(s, "/") && per == "" {
			return 0, fmt.Errorf("not a rate: %s", want)
		}
	case "m", "min":
		div = 60
	case "h":
		div = 3600
	default:
		return 0, fmt.Errorf("not a rate: %s", want)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || f < 0 || f != f || f > 1e12 {
		return 0, fmt.Errorf("not a rate: %s", want)
	}
	return f / div, nil
}

// bandwidthVar registers a bandwidth setting kept in MiB/s (see
// parseBandwidth).
func bandwidthVar(fs *flag.FlagSet, p *float64, name, env string, def float64, usage string) {
	settingVar(fs, p, name, env, def, parseBandwidth, formatFloat, usage)
}

func bandwidthFlag(fs *flag.FlagSet, name, env string, def float64, usage string) *float64 {
	p := new(float64)
	bandwidthVar(fs, p, name, env, def, usage)
	return p
}

// parseBandwidth parses a bandwidth into MiB/s: a bare number is MiB/s
// ("100", "12.5"); a size with a unit is bytes per second, with or without
// "/s" ("200MiB/s", "1GB/s").
func parseBandwidth(s string) (float64, error) {
	const want = "want MiB/s (100, 12.5) or a size per second (200MiB/s, 1GB/s), not negative (0 for no bound)"
	t := strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		if f < 0 || f != f {
			return 0, fmt.Errorf("not a bandwidth: %s", want)
		}
		return f, nil
	}
	n, err := parseSize(strings.TrimSuffix(t, "/s"))
	if err != nil {
		return 0, fmt.Errorf("not a bandwidth: %s", want)
	}
	return float64(n) / (1 << 20), nil
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// countVar registers a whole-number setting that may not be negative.
func countVar(fs *flag.FlagSet, p *int, name, env string, def int, usage string) {
	settingVar(fs, p, name, env, def, parseCount, strconv.Itoa, usage)
}

func countFlag(fs *flag.FlagSet, name, env string, def int, usage string) *int {
	p := new(int)
	countVar(fs, p, name, env, def, usage)
	return p
}

func parseCount(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, errors.New("not a count: want a whole number, 0 or more")
	}
	return n, nil
}

// boolVar registers a boolean setting: true, false, 1, 0 (as strconv.ParseBool).
func boolVar(fs *flag.FlagSet, p *bool, name, env string, def bool, usage string) {
	*p = def
	fs.Var(&setting[bool]{p: p, parse: parseBool, show: strconv.FormatBool, env: env, isBool: true}, name, usage)
}

func parseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return false, errors.New("not a boolean: want true or false (1 or 0)")
	}
	return b, nil
}

// enumVar registers a setting that takes one of the words in allowed
// (compared without regard to case).
func enumVar(fs *flag.FlagSet, p *string, name, env, def string, allowed []string, usage string) {
	parse := func(s string) (string, error) {
		t := strings.ToLower(strings.TrimSpace(s))
		if slices.Contains(allowed, t) {
			return t, nil
		}
		return "", fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
	}
	settingVar(fs, p, name, env, def, parse, func(s string) string { return s }, usage)
}

func enumFlag(fs *flag.FlagSet, name, env, def string, allowed []string, usage string) *string {
	p := new(string)
	enumVar(fs, p, name, env, def, allowed, usage)
	return p
}

// logLevels are the words --log-level takes.
var logLevels = []string{"debug", "info", "warn", "error"}

// fsyncPolicies are the words --fsync takes.
var fsyncPolicies = []string{"group", "always", "none"}
