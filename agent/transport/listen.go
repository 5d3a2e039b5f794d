package transport

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
)

// Spec is a parsed listen address.
type Spec struct {
	// Kind is "unix", "vsock" or "virtio-serial".
	Kind string
	// Path is the socket or device path (unix, virtio-serial).
	Path string
	// Port is the vsock port.
	Port uint32
}

// String formats the spec the way ParseSpec reads it.
func (s Spec) String() string {
	if s.Kind == "vsock" {
		return "vsock:" + strconv.FormatUint(uint64(s.Port), 10)
	}
	return s.Kind + ":" + s.Path
}

// ParseSpec parses "unix:/path", "vsock:PORT" or "virtio-serial:/dev/..." ("serial:" is accepted as
// an alias of "virtio-serial:").
func ParseSpec(s string) (Spec, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return Spec{}, fmt.Errorf("transport: listen address %q: want unix:/path, vsock:PORT or virtio-serial:/dev/virtio-ports/NAME", s)
	}
	switch kind {
	case "unix":
		if !strings.HasPrefix(rest, "/") {
			return Spec{}, fmt.Errorf("transport: listen address %q: unix socket path must be absolute", s)
		}
		return Spec{Kind: "unix", Path: rest}, nil
	case "vsock":
		p, err := strconv.ParseUint(rest, 10, 32)
		if err != nil || p == 0 {
			return Spec{}, fmt.Errorf("transport: listen address %q: vsock port must be a number 1..4294967295", s)
		}
		return Spec{Kind: "vsock", Port: uint32(p)}, nil
	case "virtio-serial", "serial":
		if !strings.HasPrefix(rest, "/") {
			return Spec{}, fmt.Errorf("transport: listen address %q: device path must be absolute", s)
		}
		return Spec{Kind: "virtio-serial", Path: rest}, nil
	}
	return Spec{}, fmt.Errorf("transport: listen address %q: unknown transport %q (want unix, vsock or virtio-serial)", s, kind)
}

// Listen opens the listener a spec names. vsock opens an AF_VSOCK socket: never call it with a vsock
// spec in tests.
func Listen(s Spec, log *slog.Logger) (net.Listener, error) {
	switch s.Kind {
	case "unix":
		return ListenUnix(s.Path)
	case "vsock":
		return ListenVsock(s.Port, log)
	case "virtio-serial":
		return ListenSerial(s.Path, log)
	}
	return nil, fmt.Errorf("transport: unknown transport %q", s.Kind)
}
