//go:build !tandem_system

package tandem

// Default linking: against the library built in this repository with
// `cargo build --release --lib` (target/release/libtandem.so), with an rpath so that
// binaries find it at run time without LD_LIBRARY_PATH (the library's SONAME is
// libtandem.so.0; cargo's build script puts that link beside it). Build with
// `-tags tandem_system` to link an installed copy through pkg-config instead (see
// link_system.go); the include path below is for this default build only.

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: -L${SRCDIR}/../../target/release -ltandem -Wl,-rpath,${SRCDIR}/../../target/release
import "C"
