package libvirtxml

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

func TestParseDomainXML(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		xml      string
		wantID   int
		wantNICs []snapshot.DomainNIC
		wantCh   []snapshot.Channel
		wantCID  uint32
	}{
		{
			name: "defined, not started: no targets, no channel paths or states",
			file: "domain-vm1-inactive.xml",
			wantNICs: []snapshot.DomainNIC{
				{MAC: "52:54:00:11:22:33", Type: "network", Network: "default", Model: "virtio", LinkState: "up"},
				{MAC: "52:54:00:11:22:44", Type: "bridge", Bridge: "br0", Model: "e1000", LinkState: "down"},
			},
			wantCh: []snapshot.Channel{
				{Name: snapshot.ChannelKvmnet, Type: "unix"},
				{Name: snapshot.ChannelQemuGA, Type: "unix", Path: "/run/kvmt-ga.sock"},
			},
		},
		{
			name:   "running: vnet targets, bridge resolved, automatic channel path, state",
			file:   "domain-vm1-running.xml",
			wantID: 1,
			wantNICs: []snapshot.DomainNIC{
				{MAC: "52:54:00:11:22:33", Type: "network", Network: "default", Bridge: "virbr0", Target: "vnet0", Model: "virtio", LinkState: "up"},
				{MAC: "52:54:00:11:22:44", Type: "bridge", Bridge: "br0", Target: "vnet1", Model: "e1000", LinkState: "down"},
			},
			wantCh: []snapshot.Channel{
				{Name: snapshot.ChannelKvmnet, Type: "unix", Path: "/var/lib/libvirt/qemu/channel/target/domain-1-vm1/org.kvmnet.agent.0", State: "disconnected"},
				{Name: snapshot.ChannelQemuGA, Type: "unix", Path: "/run/kvmt-ga.sock", State: "disconnected"},
			},
		},
		{
			name: "user-mode and direct NICs, vsock CID",
			file: "domain-vm2-inactive.xml",
			wantNICs: []snapshot.DomainNIC{
				{MAC: "52:54:00:99:88:77", Type: "user", Model: "virtio", LinkState: "up"},
				{MAC: "52:54:00:99:88:66", Type: "direct", SourceDev: "eth0", Model: "rtl8139", LinkState: "up"},
			},
			wantCID: 42,
		},
		{
			name: "passt backend of a user-mode NIC (libvirt >= 9.0)",
			xml: `<domain type='kvm'><name>p</name><devices><interface type='user'><mac address='52:54:00:aa:bb:cc'/>` +
				`<portForward proto='tcp'><range start='2222' to='22'/></portForward><model type='virtio'/><backend type='passt' logFile='/var/log/passt.log'/>` +
				`<alias name='net0'/></interface></devices></domain>`,
			wantNICs: []snapshot.DomainNIC{{MAC: "52:54:00:aa:bb:cc", Type: "user", Model: "virtio", Backend: "passt", LinkState: "up"}},
		},
		{
			name: "no devices at all; upper-case MAC; non-virtio channels ignored",
			xml: `<domain type='kvm'><name>bare</name><devices><interface type='network'><mac address='52:54:00:AB:CD:EF'/>` +
				`<source network='n'/></interface><channel type='pty'><target type='guestfwd' address='10.0.2.1' port='4600'/></channel></devices></domain>`,
			wantNICs: []snapshot.DomainNIC{{MAC: "52:54:00:ab:cd:ef", Type: "network", Network: "n", LinkState: "up"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.xml
			if tc.file != "" {
				in = readTestdata(t, tc.file)
			}
			d, err := ParseDomainXML(in)
			if err != nil {
				t.Fatal(err)
			}
			if d.ID != tc.wantID {
				t.Errorf("ID = %d, want %d", d.ID, tc.wantID)
			}
			if !reflect.DeepEqual(d.NICs, tc.wantNICs) {
				t.Errorf("NICs\n got  %+v\n want %+v", d.NICs, tc.wantNICs)
			}
			if !reflect.DeepEqual(d.Channels, tc.wantCh) {
				t.Errorf("Channels\n got  %+v\n want %+v", d.Channels, tc.wantCh)
			}
			if d.VsockCID != tc.wantCID {
				t.Errorf("VsockCID = %d, want %d", d.VsockCID, tc.wantCID)
			}
			if d.XML != in {
				t.Error("XML not kept")
			}
		})
	}
}

func TestParseDomainXMLErrors(t *testing.T) {
	tests := []struct{ name, xml, want string }{
		{"garbage", "<<<", "parse domain XML"},
		{"network root", "<network><name>x</name></network>", "expected element type <domain>"},
		{"no name", "<domain/>", "no <name>"},
		{"bad id", "<domain id='x'><name>a</name></domain>", `id "x"`},
		{"bad cid", "<domain><name>a</name><devices><vsock><cid address='-1'/></vsock></devices></domain>", `vsock cid "-1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDomainXML(tc.xml)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzParseDomainXML(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "domain-*.xml"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("<domain id='3'><name>x</name><devices><vsock><cid address='4294967295'/></vsock></devices></domain>")
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ParseDomainXML(in)
		if err != nil {
			return
		}
		if d.Name == "" || d.NICs == nil {
			t.Fatalf("parsed domain without name or with nil NICs: %+v", d)
		}
		for _, n := range d.NICs {
			if n.MAC != snapshot.ParseMAC(string(n.MAC)) || n.LinkState == "" {
				t.Fatalf("NIC not normalised: %+v", n)
			}
		}
		_, _ = d.Channel(snapshot.ChannelKvmnet)
	})
}
