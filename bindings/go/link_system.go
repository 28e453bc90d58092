//go:build tandem_system

package tandem

// Linking an installed libtandem (build tag tandem_system): only -ltandem is named here, so
// point the toolchain at the install prefix through the environment, e.g.
//
//	CGO_CFLAGS="-I/opt/tandem/include" \
//	CGO_LDFLAGS="-L/opt/tandem/lib -Wl,-rpath,/opt/tandem/lib" \
//	go build -tags tandem_system ./...
//
// or install tandem.h and libtandem.so where the C compiler and linker look by default.

// #cgo LDFLAGS: -ltandem
import "C"
