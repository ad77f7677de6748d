package certs

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/certs/certstest"
)

func TestReload(t *testing.T) {
	dir := t.TempDir()
	cf, kf := certstest.WriteSelfSigned(t, dir, 1)
	r, err := New(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	serial := func() int64 {
		c, _ := r.GetCertificate(nil)
		x, _ := x509.ParseCertificate(c.Certificate[0])
		return x.SerialNumber.Int64()
	}
	if serial() != 1 {
		t.Fatal("first cert not served")
	}
	certstest.WriteSelfSigned(t, dir, 2)
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(cf, later, later)
	os.Chtimes(kf, later, later)
	r.mu.Lock()
	r.checked = time.Time{}
	r.mu.Unlock()
	if serial() != 2 {
		t.Fatal("renewed cert not served")
	}
	// A half-written renewal keeps the old cert.
	os.WriteFile(cf, []byte("garbage"), 0o600)
	later = later.Add(time.Second)
	os.Chtimes(cf, later, later)
	r.mu.Lock()
	r.checked = time.Time{}
	r.mu.Unlock()
	if serial() != 2 {
		t.Fatal("bad renewal replaced the good cert")
	}
	if _, err := New(filepath.Join(dir, "missing"), kf, nil); err == nil {
		t.Fatal("missing cert accepted")
	}
}
