package s3_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"depot/nameserver/nsclient"
)

func nsUser(ak, secret string) nsclient.User { return nsclient.User{AccessKey: ak, Secret: secret} }

func httpGet(u string) ([]byte, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET: %s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func nsSettingsPublic(p bool) nsclient.BucketSettings { return nsclient.BucketSettings{Public: &p} }

// afterTick paces polling loops on progress made by other goroutines.
func afterTick() <-chan time.Time { return time.After(5 * time.Millisecond) }
