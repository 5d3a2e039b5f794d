package hostnet

import (
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// nilHandle gives unit tests a Handle value that is never used for I/O.
func nilHandle() *netlink.Handle { return &netlink.Handle{} }

func linkMsg(t *testing.T, withData bool, stp uint32) []byte {
	t.Helper()
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	b := msg.Serialize()
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	if withData {
		data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
		data.AddRtAttr(nl.IFLA_BR_HELLO_TIME, nl.Uint32Attr(200))
		data.AddRtAttr(nl.IFLA_BR_STP_STATE, nl.Uint32Attr(stp))
	}
	b = append(b, nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated("br0")).Serialize()...)
	return append(b, info.Serialize()...)
}

func TestParseSTP(t *testing.T) {
	tests := []struct {
		name    string
		msg     []byte
		stp, ok bool
	}{
		{"stp on", linkMsg(t, true, 1), true, true},
		{"stp off", linkMsg(t, true, 0), false, true},
		{"no info data", linkMsg(t, false, 0), false, false},
		{"short", []byte{1, 2}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stp, ok := parseSTP(tc.msg)
			if stp != tc.stp || ok != tc.ok {
				t.Fatalf("parseSTP = %v,%v want %v,%v", stp, ok, tc.stp, tc.ok)
			}
		})
	}
}

func TestNeighState(t *testing.T) {
	tests := map[int]string{
		netlink.NUD_REACHABLE: "reachable", netlink.NUD_STALE: "stale", netlink.NUD_FAILED: "failed",
		netlink.NUD_PERMANENT: "permanent", netlink.NUD_INCOMPLETE: "incomplete", netlink.NUD_DELAY: "delay",
		netlink.NUD_PROBE: "probe", netlink.NUD_NOARP: "noarp", 0: "none",
	}
	for s, want := range tests {
		if got := NeighState(s); got != want {
			t.Errorf("NeighState(%#x) = %q, want %q", s, got, want)
		}
	}
}
