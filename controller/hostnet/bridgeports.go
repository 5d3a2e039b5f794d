package hostnet

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// portInfo describes the ports of bridge index among links; STP port states come from one
// RTM_GETLINK per port (netlink's library decodes bond and vrf slave data, not bridge ports).
func (r *Reader) portInfo(index int, links []netlink.Link) ([]snapshot.BridgePort, error) {
	var out []snapshot.BridgePort
	var firstErr error
	for _, l := range links {
		a := l.Attrs()
		if a.MasterIndex != index {
			continue
		}
		p := snapshot.BridgePort{Name: a.Name, Kind: l.Type(), OperState: a.OperState.String(), AdminUp: a.Flags&net.FlagUp != 0}
		st, err := r.portState(a.Index)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		p.STPState = st
		out = append(out, p)
	}
	return out, firstErr
}

func (r *Reader) portState(index int) (string, error) {
	msgs, err := r.getLink(index)
	if err != nil {
		return "", err
	}
	for _, m := range msgs {
		if st, ok := ParsePortState(m); ok {
			return st, nil
		}
	}
	return "", nil
}

// getLink sends one RTM_GETLINK for index on a socket in the Reader's namespace and returns the
// RTM_NEWLINK answers (without headers), for attributes netlink's library does not decode.
func (r *Reader) getLink(index int) ([][]byte, error) {
	sock, err := nl.GetNetlinkSocketAt(r.cfg.Netns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}
	return req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
}

// portStates are the BR_STATE_* names as `bridge link` prints them.
var portStates = []string{"disabled", "listening", "learning", "forwarding", "blocking"}

// ParsePortState finds IFLA_LINKINFO/IFLA_INFO_SLAVE_DATA/IFLA_BRPORT_STATE of a bridge port in one
// RTM_NEWLINK message (without the netlink header). It never panics on malformed input.
func ParsePortState(m []byte) (string, bool) {
	if len(m) < unix.SizeofIfInfomsg {
		return "", false
	}
	attrs, err := parseAttrs(m[unix.SizeofIfInfomsg:])
	if err != nil {
		return "", false
	}
	for _, a := range attrs {
		if a.typ != unix.IFLA_LINKINFO {
			continue
		}
		info, err := parseAttrs(a.val)
		if err != nil {
			return "", false
		}
		bridgePort := false
		for _, i := range info {
			if i.typ == nl.IFLA_INFO_SLAVE_KIND {
				bridgePort = string(trimNUL(i.val)) == "bridge"
			}
		}
		if !bridgePort {
			return "", false
		}
		for _, i := range info {
			if i.typ != nl.IFLA_INFO_SLAVE_DATA {
				continue
			}
			data, err := parseAttrs(i.val)
			if err != nil {
				return "", false
			}
			for _, d := range data {
				if d.typ == nl.IFLA_BRPORT_STATE && len(d.val) >= 1 {
					if int(d.val[0]) < len(portStates) {
						return portStates[d.val[0]], true
					}
					return "unknown", true
				}
			}
		}
	}
	return "", false
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// attr is one netlink attribute: its type without the nested/byte-order flags, and its payload.
type attr struct {
	typ uint16
	val []byte
}

// parseAttrs splits a netlink attribute stream, failing on a length that does not fit instead of
// panicking (netlink's nl.ParseRouteAttr slices out of range on such input, found by fuzzing).
func parseAttrs(b []byte) ([]attr, error) {
	var out []attr
	for len(b) >= unix.SizeofRtAttr {
		l := int(nl.NativeEndian().Uint16(b[0:2]))
		typ := nl.NativeEndian().Uint16(b[2:4]) & nl.NLA_TYPE_MASK
		if l < unix.SizeofRtAttr || l > len(b) {
			return nil, fmt.Errorf("netlink attribute length %d outside 4..%d", l, len(b))
		}
		out = append(out, attr{typ: typ, val: b[unix.SizeofRtAttr:l]})
		next := (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return out, nil
}
