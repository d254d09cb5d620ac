package s3_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"

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
