package ftpd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names of the generated certificate inside the state directory.
const (
	certFile = "ftp-tls-cert.pem"
	keyFile  = "ftp-tls-key.pem"
)

// tlsConfig builds the one *tls.Config used for control and data
// connections. One instance matters: Go issues session tickets under keys
// that belong to the Config, so a data connection can resume the control
// connection's session (what clients with require_ssl_reuse-style checks
// expect). TLS 1.2 is the minimum; NextProtos ["ftp"] makes a client that
// offers ALPN for another protocol fail the handshake (ALPACA).
func tlsConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"ftp"},
	}
}

// loadOrCreateCert loads certPath/keyPath when set; otherwise it reuses or
// generates a self-signed ECDSA P-256 certificate in stateDir (key 0600).
// With no state directory the certificate lives in memory only.
func loadOrCreateCert(certPath, keyPath, stateDir string) (tls.Certificate, bool, error) {
	if certPath != "" {
		c, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return tls.Certificate{}, false, fmt.Errorf("ftpd: load certificate %q: %w", certPath, err)
		}
		return c, false, nil
	}
	if stateDir != "" {
		cp, kp := filepath.Join(stateDir, certFile), filepath.Join(stateDir, keyFile)
		c, err := tls.LoadX509KeyPair(cp, kp)
		if err == nil {
			return c, false, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return tls.Certificate{}, false, fmt.Errorf("ftpd: load generated certificate %q: %w", cp, err)
		}
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if stateDir != "" {
		if err := writeFileAtomic(filepath.Join(stateDir, keyFile), keyPEM, 0o600); err != nil {
			return tls.Certificate{}, false, err
		}
		if err := writeFileAtomic(filepath.Join(stateDir, certFile), certPEM, 0o644); err != nil {
			return tls.Certificate{}, false, err
		}
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("ftpd: generated certificate: %w", err)
	}
	return c, true, nil
}

func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ftpd: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, fmt.Errorf("ftpd: serial: %w", err)
	}
	host, _ := os.Hostname()
	names := []string{"localhost"}
	if host != "" && host != "localhost" {
		names = append(names, host)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "bootyard FTP (self-signed)"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("ftpd: create certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("ftpd: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// writeFileAtomic writes data to name via a temporary file, fsync and rename.
func writeFileAtomic(name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return fmt.Errorf("ftpd: write %q: %w", name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		return fmt.Errorf("ftpd: write %q: %w", name, err)
	}
	return nil
}
