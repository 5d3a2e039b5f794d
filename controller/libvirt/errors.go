package libvirt

import (
	"errors"
	"fmt"
	"strings"

	golibvirt "libvirt.org/go/libvirt"
)

// ErrNotFound is wrapped by errors for a network or domain that does not exist.
var ErrNotFound = errors.New("not found")

// ConnectError is returned by Open when no connection could be made. Hint says what to do.
type ConnectError struct {
	// URI that was tried.
	URI string
	// Hint is the next step for the user.
	Hint string
	// Err is libvirt's error.
	Err error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("connect to libvirt at %s: %s; %s", e.URI, libvirtMessage(e.Err), e.Hint)
}

// Unwrap returns libvirt's error.
func (e *ConnectError) Unwrap() error { return e.Err }

// connectHint chooses advice from libvirt's error message for a failed connection.
func connectHint(uri, msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "permission denied") || strings.Contains(m, "authentication") ||
		strings.Contains(m, "access denied") || strings.Contains(m, "not authorized"):
		return "run as root (sudo) or add your user to the libvirt group, then log in again"
	case strings.Contains(m, "no such file") || strings.Contains(m, "connection refused") ||
		strings.Contains(m, "failed to connect socket"):
		if IsSession(uri) {
			return "no per-user libvirt daemon answers: start it (virsh -c qemu:///session list starts it) or pass -c qemu:///system"
		}
		return "is libvirtd running? start it (systemctl start libvirtd, or virtqemud.socket on modular hosts), " +
			"or pass the right URI with -c / LIBVIRT_DEFAULT_URI"
	case strings.Contains(m, "no connection driver") || strings.Contains(m, "unsupported"):
		return "this libvirt has no driver for that URI: check -c / LIBVIRT_DEFAULT_URI and that libvirt-daemon-driver-qemu is installed"
	default:
		return "check the URI given with -c / LIBVIRT_DEFAULT_URI and that libvirtd runs and you may use it"
	}
}

// libvirtMessage returns libvirt's own message instead of the binding's "virError(Code=...)" text.
func libvirtMessage(err error) string {
	var le golibvirt.Error
	if errors.As(err, &le) {
		return le.Message
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// lvError wraps a libvirt error so its message (not the binding's struct dump) is shown, keeping the
// original for errors.As / errors.Is.
type lvError struct{ err error }

func (e lvError) Error() string { return libvirtMessage(e.err) }
func (e lvError) Unwrap() error { return e.err }

func wrap(err error) error {
	if err == nil {
		return nil
	}
	var le golibvirt.Error
	if errors.As(err, &le) {
		switch le.Code {
		case golibvirt.ERR_NO_NETWORK, golibvirt.ERR_NO_DOMAIN:
			return fmt.Errorf("%w: %w", ErrNotFound, lvError{err})
		}
		return lvError{err}
	}
	return err
}

// isCode reports whether err is a libvirt error with the given code.
func isCode(err error, code golibvirt.ErrorNumber) bool {
	var le golibvirt.Error
	return errors.As(err, &le) && le.Code == code
}
