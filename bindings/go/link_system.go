//go:build tandem_system

package tandem

// Linking an installed libtandem (build tag tandem_system): the compiler and linker flags come
// from pkg-config's tandem.pc, which `make install` writes, so the package builds anywhere,
// outside a tandem checkout too:
//
//	PKG_CONFIG_PATH=/opt/tandem/lib/pkgconfig go build -tags tandem_system ./...
//
// tandem.pc names no rpath: run the program with LD_LIBRARY_PATH=/opt/tandem/lib, install into
// a prefix the loader searches (e.g. /usr/local, then ldconfig), or add your own with
// CGO_LDFLAGS="-Wl,-rpath,/opt/tandem/lib".

// #cgo pkg-config: tandem
import "C"
