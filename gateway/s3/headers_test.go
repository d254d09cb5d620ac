package s3_test

import (
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"

	"depot/internal/testcluster"
)

// TestS3OversizedHeaders sends a request whose headers exceed S3's 8 KiB
// header section: the answer is the S3 error document, not a bare 431.
func TestS3OversizedHeaders(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	req, err := http.NewRequest(http.MethodGet, c.Endpoint()+"/some-bucket/some-key", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Meta-Big", strings.Repeat("x", 20<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var doc struct {
		Code string `xml:"Code"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("status %s, body not S3 XML: %v: %q", resp.Status, err, body)
	}
	if resp.StatusCode != http.StatusBadRequest || doc.Code != "RequestHeaderSectionTooLarge" {
		t.Fatalf("status %s code %q, want 400 RequestHeaderSectionTooLarge", resp.Status, doc.Code)
	}
}
