// Package libvirtdomains adapts controller/libvirt's Source to channel.Domains. It is the only part of the
// channel feature that links libvirt (cgo); it must not hold any logic beyond the mapping.
package libvirtdomains

import (
	"context"
	"fmt"
	"strings"

	"github.com/kvmnet/kvmnet/controller/libvirt"
)

// secureXML is what a Source offers when it can read the persistent XML with its secrets
// (VIR_DOMAIN_XML_SECURE); redefining without them would drop graphics passwords.
type secureXML interface {
	DomainXMLSecure(ctx context.Context, name string) (string, error)
}

// Adapter implements channel.Domains on a libvirt connection.
type Adapter struct {
	// Src is the open connection.
	Src *libvirt.Source
}

// PersistentXML returns the persistent definition. When the connection cannot include secrets, a
// domain with a <graphics> device is refused: its password could be lost on redefinition.
func (a Adapter) PersistentXML(ctx context.Context, name string) (string, error) {
	var src any = a.Src
	if s, ok := src.(secureXML); ok {
		return s.DomainXMLSecure(ctx, name)
	}
	x, err := a.Src.DomainXML(ctx, name, true)
	if err != nil {
		return "", err
	}
	if strings.Contains(x, "<graphics") {
		return "", fmt.Errorf("domain %s has a graphics device whose password this build cannot read back "+
			"(no VIR_DOMAIN_XML_SECURE); redefining could drop it: add the channel with `virsh edit %s`", name, name)
	}
	return x, nil
}

// LiveXML returns the live XML of an active (running or paused) domain, "" when it is shut off.
func (a Adapter) LiveXML(ctx context.Context, name string) (string, error) {
	d, err := a.Src.Domain(ctx, name)
	if err != nil {
		return "", err
	}
	if d.State == "shut off" || d.State == "" {
		return "", nil
	}
	return a.Src.DomainXML(ctx, name, false)
}

// DefineXML redefines the persistent domain.
func (a Adapter) DefineXML(ctx context.Context, xml string) error {
	return a.Src.DefineDomainXML(ctx, xml)
}

// AttachDeviceLive hot-plugs into the running domain only; the persistent XML is defined separately.
func (a Adapter) AttachDeviceLive(ctx context.Context, name, dev string) error {
	return a.Src.AttachDeviceLive(ctx, name, dev, false)
}
