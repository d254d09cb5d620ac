package main

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadSSEKeys: the master keys come from DEPOT_SSE_MASTER_KEY, else
// from --sse-master-key-file, else from the data directory, generated
// there once; without any of them there is none.
func TestLoadSSEKeys(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DEPOT_SSE_MASTER_KEY", "")
	k, err := loadSSEKeys("", "")
	if err != nil || k != nil {
		t.Fatalf("no source: %v %v", k, err)
	}
	k1, err := loadSSEKeys("", dir)
	if err != nil || k1.Active() != "1" {
		t.Fatalf("generated: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, sseKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v", err)
	}
	if k2, err := loadSSEKeys("", dir); err != nil || strings.Join(k2.IDs(), ",") != "1" {
		t.Fatalf("reloaded: %v", err)
	}
	file := filepath.Join(dir, "keys")
	text := "a:" + hex.EncodeToString(make([]byte, 32)) + "\nb:" + strings.Repeat("ab", 32) + "\n"
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := loadSSEKeys(file, dir); err != nil || k.Active() != "b" {
		t.Fatalf("file: %v", err)
	}
	t.Setenv("DEPOT_SSE_MASTER_KEY", "x:"+strings.Repeat("cd", 32)+",y:"+strings.Repeat("ef", 32))
	if k, err := loadSSEKeys(file, dir); err != nil || k.Active() != "y" {
		t.Fatalf("env: %v", err)
	}
	t.Setenv("DEPOT_SSE_MASTER_KEY", "not a key")
	if _, err := loadSSEKeys(file, dir); err == nil {
		t.Fatal("bad env key accepted")
	}
}
