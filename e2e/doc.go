// Package e2e holds bootyard's end-to-end network-boot test: a QEMU virtual
// machine with a real iPXE option ROM boots from bootyard inside network
// namespaces the test creates, downloads a payload over FTP and uploads a
// log into the anonymous drop box.
//
// The tests carry the build tag e2e and need root (network namespaces, tap
// devices), QEMU and a few Debian packages; see docs/e2e.md. Run them with
//
//	go test -tags e2e -v -timeout 20m ./e2e/
//
// Without the tag the package is empty, so `go test ./...` stays fast.
package e2e
