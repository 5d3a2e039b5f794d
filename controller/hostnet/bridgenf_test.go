package hostnet

import (
	"encoding/binary"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

func TestReadBridgeNetfilter(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  snapshot.BridgeNetfilter
	}{
		{"on (a new namespace's default)", map[string]string{
			"net/bridge/bridge-nf-call-iptables": "1\n", "net/bridge/bridge-nf-call-ip6tables": "1\n", "net/bridge/bridge-nf-call-arptables": "1\n"},
			snapshot.BridgeNetfilter{Known: true, Loaded: true, CallIPTables: true, CallIP6Tables: true, CallARPTables: true}},
		{"iptables off", map[string]string{
			"net/bridge/bridge-nf-call-iptables": "0\n", "net/bridge/bridge-nf-call-ip6tables": "1\n", "net/bridge/bridge-nf-call-arptables": "0\n"},
			snapshot.BridgeNetfilter{Known: true, Loaded: true, CallIP6Tables: true}},
		{"module not loaded", map[string]string{"net/ipv4/ip_forward": "1\n"}, snapshot.BridgeNetfilter{Known: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			got, err := ReadBridgeNetfilter(ProcSysctl{Root: root})
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
			if got.IPv4Filtered() != tc.want.CallIPTables {
				t.Fatalf("IPv4Filtered = %v", got.IPv4Filtered())
			}
		})
	}
	t.Run("half present is an error", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, map[string]string{"net/bridge/bridge-nf-call-iptables": "1\n"})
		if _, err := ReadBridgeNetfilter(ProcSysctl{Root: root}); err == nil {
			t.Fatal("missing ip6tables key read without error")
		}
	})
}

// rtattr encodes one netlink attribute.
func rtattr(typ uint16, val []byte) []byte {
	b := make([]byte, 4, 4+len(val)+3)
	binary.NativeEndian.PutUint16(b[0:], uint16(4+len(val)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// portMsg is an RTM_NEWLINK body as the kernel sends it for a port of kind slaveKind in state st.
func portMsg(slaveKind string, st byte) []byte {
	m := make([]byte, unix.SizeofIfInfomsg)
	data := rtattr(nl.IFLA_BRPORT_STATE, []byte{st})
	info := append(rtattr(nl.IFLA_INFO_SLAVE_KIND, append([]byte(slaveKind), 0)), rtattr(nl.IFLA_INFO_SLAVE_DATA, data)...)
	return append(m, rtattr(unix.IFLA_LINKINFO, info)...)
}

func TestParsePortState(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		want string
		ok   bool
	}{
		{"forwarding", portMsg("bridge", 3), "forwarding", true},
		{"blocking", portMsg("bridge", 4), "blocking", true},
		{"disabled", portMsg("bridge", 0), "disabled", true},
		{"out of range", portMsg("bridge", 9), "unknown", true},
		{"bond slave", portMsg("bond", 3), "", false},
		{"short", []byte{1, 2}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParsePortState(tc.msg)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("got %q %v, want %q %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzParsePortState(f *testing.F) {
	f.Add(portMsg("bridge", 3))
	f.Add(portMsg("bond", 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, ok := ParsePortState(b)
		if !ok && st != "" {
			t.Fatalf("state %q without ok", st)
		}
	})
}
