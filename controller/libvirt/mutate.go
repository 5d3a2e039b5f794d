package libvirt

import (
	"context"
	"fmt"

	golibvirt "libvirt.org/go/libvirt"

	"github.com/kvmnet/kvmnet/controller/libvirt/libvirtxml"
)

// RestartWarning is what callers print before RestartNetwork: the network's bridge and dnsmasq go
// away for a moment.
const RestartWarning = "restarting a libvirt network removes its bridge for a moment: running guests " +
	"lose connectivity and their DHCP may blip; libvirt reattaches their interfaces (vnetN) when it comes back"

// DefineNetwork defines (persistently) the network described by xml and returns its name. It does not
// start it.
func (s *Source) DefineNetwork(ctx context.Context, xml string) (string, error) {
	want, err := libvirtxml.ParseNetworkXML(xml)
	if err != nil {
		return "", fmt.Errorf("define network: %w", err)
	}
	return call(ctx, fmt.Sprintf("define network %q", want.Name), func() (string, error) {
		n, err := s.conn.NetworkDefineXML(xml)
		if err != nil {
			return "", fmt.Errorf("define network %q: %w", want.Name, wrap(err))
		}
		defer func() { _ = n.Free() }()
		name, err := n.GetName()
		if err != nil {
			return "", fmt.Errorf("define network %q: %w", want.Name, wrap(err))
		}
		return name, nil
	})
}

// withNetwork looks up a network and runs fn on it, bounded by ctx.
func (s *Source) withNetwork(ctx context.Context, what, name string, fn func(*golibvirt.Network) error) error {
	_, err := call(ctx, fmt.Sprintf("%s network %q", what, name), func() (struct{}, error) {
		n, err := s.conn.LookupNetworkByName(name)
		if err != nil {
			return struct{}{}, fmt.Errorf("%s network %q: %w", what, name, wrap(err))
		}
		defer func() { _ = n.Free() }()
		if err := fn(n); err != nil {
			return struct{}{}, fmt.Errorf("%s network %q: %w", what, name, wrap(err))
		}
		return struct{}{}, nil
	})
	return err
}

// StartNetwork starts a defined network. Starting an active network is not an error.
func (s *Source) StartNetwork(ctx context.Context, name string) error {
	return s.withNetwork(ctx, "start", name, func(n *golibvirt.Network) error {
		if active, err := n.IsActive(); err == nil && active {
			return nil
		}
		return n.Create()
	})
}

// SetNetworkAutostart turns a network's autostart on or off.
func (s *Source) SetNetworkAutostart(ctx context.Context, name string, on bool) error {
	return s.withNetwork(ctx, "set autostart of", name, func(n *golibvirt.Network) error {
		return n.SetAutostart(on)
	})
}

// RestartNetwork destroys and starts a network so that libvirt re-creates its bridge, dnsmasq and
// firewall rules. Print RestartWarning first. An inactive network is just started.
func (s *Source) RestartNetwork(ctx context.Context, name string) error {
	return s.withNetwork(ctx, "restart", name, func(n *golibvirt.Network) error {
		if active, err := n.IsActive(); err == nil && active {
			if err := n.Destroy(); err != nil {
				return err
			}
		}
		return n.Create()
	})
}

// DefineDomainXML (re)defines a domain's persistent configuration from xml; for a running domain it
// takes effect at its next boot.
func (s *Source) DefineDomainXML(ctx context.Context, xml string) error {
	_, err := call(ctx, "define domain", func() (struct{}, error) {
		d, err := s.conn.DomainDefineXML(xml)
		if err != nil {
			return struct{}{}, fmt.Errorf("define domain: %w", wrap(err))
		}
		_ = d.Free()
		return struct{}{}, nil
	})
	return err
}

// AttachDeviceLive hot-plugs the device described by xml (e.g. a <channel>) into the running domain;
// with persist the persistent definition gets it too.
func (s *Source) AttachDeviceLive(ctx context.Context, domain, xml string, persist bool) error {
	_, err := call(ctx, fmt.Sprintf("attach device to domain %q", domain), func() (struct{}, error) {
		d, err := s.conn.LookupDomainByName(domain)
		if err != nil {
			return struct{}{}, fmt.Errorf("attach device to domain %q: %w", domain, wrap(err))
		}
		defer func() { _ = d.Free() }()
		flags := golibvirt.DOMAIN_DEVICE_MODIFY_LIVE
		if persist {
			flags |= golibvirt.DOMAIN_DEVICE_MODIFY_CONFIG
		}
		if err := d.AttachDeviceFlags(xml, flags); err != nil {
			return struct{}{}, fmt.Errorf("attach device to domain %q: %w", domain, wrap(err))
		}
		return struct{}{}, nil
	})
	return err
}
