package localcluster

import (
	"crypto/tls"
	"net/http"
	"time"
)

// insecureHTTPClient talks to components serving self-signed certificates
// on loopback, as kube-scheduler does when given no serving certificate.
func insecureHTTPClient() *http.Client {
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback, self-signed
	}
}
