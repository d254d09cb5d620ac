package testcluster

import (
	"os"
	"os/exec"
	"testing"
)

// Chromium returns the path of Debian's chromium (or another Chrome) for
// browser tests. It skips the test when there is none, except under CI,
// where a missing browser fails it: a skipped check in CI is a hidden gap.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (apt-get install chromium; scripts/test.sh does it)")
	}
	t.Skip("chromium is not installed: apt-get install chromium to run the browser test")
	return ""
}
