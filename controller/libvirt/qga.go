package libvirt

import (
	"context"
	"fmt"
	"math"
	"time"

	golibvirt "libvirt.org/go/libvirt"

	"github.com/kvmnet/kvmnet/controller/qga"
)

// QemuAgentCommand sends one QMP command to the domain's qemu-guest-agent through
// virDomainQemuAgentCommand and returns the raw reply; it implements qga.Commander. libvirt waits at
// most timeout (rounded up to whole seconds) for the guest; ctx bounds the call as a whole. Failures
// wrap qga's sentinel errors: no channel (qga.ErrNotConfigured), no answer (qga.ErrNotResponding),
// domain not running, no such domain.
func (s *Source) QemuAgentCommand(ctx context.Context, domain, command string, timeout time.Duration) (string, error) {
	secs := golibvirt.DomainQemuAgentCommandTimeout(max(1, int(math.Ceil(timeout.Seconds()))))
	return call(ctx, fmt.Sprintf("qemu-guest-agent command on domain %q", domain), func() (string, error) {
		d, err := s.conn.LookupDomainByName(domain)
		if err != nil {
			if isCode(err, golibvirt.ERR_NO_DOMAIN) {
				return "", fmt.Errorf("%w %q: %w", qga.ErrNoDomain, domain, lvError{err})
			}
			return "", wrap(err)
		}
		defer func() { _ = d.Free() }()
		reply, err := d.QemuAgentCommand(command, secs, 0)
		if err != nil {
			return "", qgaError(err)
		}
		return reply, nil
	})
}

// qgaError maps libvirt's agent errors onto qga's sentinels, keeping libvirt's message.
func qgaError(err error) error {
	switch {
	case isCode(err, golibvirt.ERR_AGENT_UNRESPONSIVE), isCode(err, golibvirt.ERR_AGENT_COMMAND_TIMEOUT),
		isCode(err, golibvirt.ERR_AGENT_UNSYNCED):
		return fmt.Errorf("%w: %w", qga.ErrNotResponding, lvError{err})
	case isCode(err, golibvirt.ERR_ARGUMENT_UNSUPPORTED):
		// "QEMU guest agent is not configured": no org.qemu.guest_agent.0 channel.
		return fmt.Errorf("%w: %w", qga.ErrNotConfigured, lvError{err})
	case isCode(err, golibvirt.ERR_OPERATION_INVALID):
		// "domain is not running"
		return fmt.Errorf("%w: %w", qga.ErrDomainNotRunning, lvError{err})
	}
	return wrap(err)
}
