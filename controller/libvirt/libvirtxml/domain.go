package libvirtxml

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// domainXML is the subset of libvirt's <domain> that kvmnet reads.
type domainXML struct {
	XMLName xml.Name `xml:"domain"`
	ID      string   `xml:"id,attr"`
	Name    string   `xml:"name"`
	UUID    string   `xml:"uuid"`
	Devices struct {
		Interfaces []struct {
			Type string `xml:"type,attr"`
			MAC  *struct {
				Address string `xml:"address,attr"`
			} `xml:"mac"`
			Source *struct {
				Network string `xml:"network,attr"`
				Bridge  string `xml:"bridge,attr"`
				Dev     string `xml:"dev,attr"`
			} `xml:"source"`
			Target *struct {
				Dev string `xml:"dev,attr"`
			} `xml:"target"`
			Model *struct {
				Type string `xml:"type,attr"`
			} `xml:"model"`
			Link *struct {
				State string `xml:"state,attr"`
			} `xml:"link"`
			Backend *struct {
				Type string `xml:"type,attr"`
			} `xml:"backend"`
		} `xml:"interface"`
		Channels []struct {
			Type   string `xml:"type,attr"`
			Source *struct {
				Mode string `xml:"mode,attr"`
				Path string `xml:"path,attr"`
			} `xml:"source"`
			Target *struct {
				Type  string `xml:"type,attr"`
				Name  string `xml:"name,attr"`
				State string `xml:"state,attr"`
			} `xml:"target"`
		} `xml:"channel"`
		Vsock *struct {
			CID *struct {
				Auto    string `xml:"auto,attr"`
				Address string `xml:"address,attr"`
			} `xml:"cid"`
		} `xml:"vsock"`
	} `xml:"devices"`
}

// ParseDomainXML parses a libvirt domain description into a snapshot.Domain: name, UUID, ID (running
// domains), NICs, virtio channels and the vsock CID. State and Persistent are not in the XML: the
// caller fills them. MACs are lower-cased; a NIC without <link> has LinkState "up". XML is set to the
// input.
func ParseDomainXML(data string) (snapshot.Domain, error) {
	var x domainXML
	if err := xml.Unmarshal([]byte(data), &x); err != nil {
		return snapshot.Domain{}, fmt.Errorf("parse domain XML: %w", err)
	}
	d := snapshot.Domain{Name: strings.TrimSpace(x.Name), UUID: strings.TrimSpace(x.UUID), XML: data, NICs: []snapshot.DomainNIC{}}
	if d.Name == "" {
		return snapshot.Domain{}, fmt.Errorf("parse domain XML: no <name>")
	}
	if x.ID != "" {
		id, err := strconv.Atoi(x.ID)
		if err != nil {
			return snapshot.Domain{}, fmt.Errorf("parse domain XML %q: id %q: %w", d.Name, x.ID, err)
		}
		d.ID = id
	}
	for _, i := range x.Devices.Interfaces {
		nic := snapshot.DomainNIC{Type: i.Type, LinkState: "up"}
		if i.MAC != nil {
			nic.MAC = snapshot.ParseMAC(i.MAC.Address)
		}
		if i.Source != nil {
			nic.Network, nic.Bridge, nic.SourceDev = i.Source.Network, i.Source.Bridge, i.Source.Dev
		}
		if i.Target != nil {
			nic.Target = i.Target.Dev
		}
		if i.Model != nil {
			nic.Model = i.Model.Type
		}
		if i.Backend != nil {
			nic.Backend = i.Backend.Type
		}
		if i.Link != nil && i.Link.State != "" {
			nic.LinkState = i.Link.State
		}
		d.NICs = append(d.NICs, nic)
	}
	for _, c := range x.Devices.Channels {
		if c.Target == nil || c.Target.Type != "virtio" {
			continue // guestfwd and xen channels are not agent ports
		}
		ch := snapshot.Channel{Name: c.Target.Name, Type: c.Type, State: c.Target.State}
		if c.Source != nil {
			ch.Path = c.Source.Path
		}
		d.Channels = append(d.Channels, ch)
	}
	if v := x.Devices.Vsock; v != nil && v.CID != nil && v.CID.Address != "" {
		cid, err := strconv.ParseUint(v.CID.Address, 10, 32)
		if err != nil {
			return snapshot.Domain{}, fmt.Errorf("parse domain XML %q: vsock cid %q: %w", d.Name, v.CID.Address, err)
		}
		d.VsockCID = uint32(cid)
	}
	return d, nil
}
