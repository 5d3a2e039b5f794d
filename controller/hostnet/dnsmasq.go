package hostnet

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// needsDnsmasq reports whether libvirt runs a dnsmasq for n: an active network it serves itself
// (nat/route/open/isolated) with an IPv4 subnet and DHCP or DNS.
func needsDnsmasq(n snapshot.Network) bool {
	switch n.Forward {
	case snapshot.ForwardNAT, snapshot.ForwardRoute, snapshot.ForwardOpen, snapshot.ForwardIsolated:
	default:
		return false
	}
	return n.Active && n.Subnet() != "" && (n.HasDHCP() || n.DNSEnabled)
}

// DnsmasqAll checks dnsmasq for every network that needs one (see Dnsmasq), concurrently; networks
// without one (inactive, bridged, no IP) have no entry.
func (r *Reader) DnsmasqAll(ctx context.Context, nets []snapshot.Network) map[string]snapshot.DnsmasqStatus {
	out := map[string]snapshot.DnsmasqStatus{}
	type res struct {
		name string
		st   snapshot.DnsmasqStatus
	}
	ch := make(chan res)
	n := 0
	for _, net := range nets {
		if !needsDnsmasq(net) {
			continue
		}
		n++
		go func() { ch <- res{net.Name, r.Dnsmasq(ctx, net)} }()
	}
	for range n {
		x := <-ch
		out[x.name] = x.st
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Dnsmasq checks libvirt's dnsmasq for network n: the pid in <run dir>/network/<name>.pid (or, when
// the file is missing, a dnsmasq in the same network namespace started with the network's conf file)
// must be a live dnsmasq, and — when the network has DNS — a DNS query (CHAOS TXT version.bind, which
// dnsmasq answers itself) sent from inside the namespace to the bridge IP port 53 must get an answer.
func (r *Reader) Dnsmasq(ctx context.Context, n snapshot.Network) snapshot.DnsmasqStatus {
	st := snapshot.DnsmasqStatus{Checked: true}
	var ev []string
	pidFile := filepath.Join(r.cfg.RunDir, "network", n.Name+".pid")
	pid, err := readPID(filepath.Join(r.cfg.FSRoot, pidFile))
	switch {
	case err == nil:
		ev = append(ev, "pidfile="+pidFile, "pid="+strconv.Itoa(pid))
		if ok, why := r.isDnsmasqFor(pid, n.Name); ok {
			st.Running, st.PID = true, pid
		} else {
			ev = append(ev, "process="+why)
		}
	default:
		ev = append(ev, "pidfile="+pidFile+" pidfile_error="+errWord(err))
		if p := r.findDnsmasq(n.Name); p > 0 {
			st.Running, st.PID = true, p
			ev = append(ev, "found_by=conf-file", "pid="+strconv.Itoa(p))
		}
	}
	ev = append(ev, "running="+strconv.FormatBool(st.Running))
	ip := n.BridgeIPv4()
	if n.DNSEnabled && ip != "" {
		target := net.JoinHostPort(ip, strconv.Itoa(r.cfg.DNSPort))
		rcode, err := r.probeDNS(ctx, target)
		if err == nil {
			st.AnswersDNS = true
			ev = append(ev, "dns_probe="+target, "dns_rcode="+strconv.Itoa(rcode))
		} else {
			ev = append(ev, "dns_probe="+target, "dns_error="+errWord(err))
		}
	} else {
		ev = append(ev, "dns=disabled")
	}
	st.Evidence = strings.Join(ev, " ")
	return st
}

// errWord squeezes an error into one evidence word.
func errWord(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "missing"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid %q", strings.TrimSpace(string(b)))
	}
	return pid, nil
}

// isDnsmasqFor checks that pid is a live (non-zombie) dnsmasq whose command line names the network's
// conf file; otherwise it says what it found instead.
func (r *Reader) isDnsmasqFor(pid int, network string) (bool, string) {
	stat, err := os.ReadFile(filepath.Join(r.cfg.ProcDir, strconv.Itoa(pid), "stat"))
	if err != nil {
		return false, "gone"
	}
	s := string(stat)
	lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if lp < 0 || rp < lp || rp+2 >= len(s) {
		return false, "unreadable"
	}
	if comm := s[lp+1 : rp]; comm != "dnsmasq" {
		return false, "not-dnsmasq:" + comm
	}
	if state := s[rp+2]; state == 'Z' || state == 'X' {
		return false, "zombie"
	}
	cmd, _ := os.ReadFile(filepath.Join(r.cfg.ProcDir, strconv.Itoa(pid), "cmdline"))
	if !strings.Contains(string(cmd), "/"+network+".conf") {
		return false, "other-conf"
	}
	return true, ""
}

// findDnsmasq looks for a dnsmasq started with the network's conf file in the Reader's network
// namespace (other namespaces may run their own libvirt with the same file names).
func (r *Reader) findDnsmasq(network string) int {
	want, err := r.nsInode()
	if err != nil {
		return 0
	}
	ents, _ := os.ReadDir(r.cfg.ProcDir)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ok, _ := r.isDnsmasqFor(pid, network); !ok {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(r.cfg.ProcDir, e.Name(), "ns", "net"), &st) == nil && st.Ino == want {
			return pid
		}
	}
	return 0
}

func (r *Reader) nsInode() (uint64, error) {
	var st syscall.Stat_t
	if r.cfg.Netns.IsOpen() {
		err := syscall.Fstat(int(r.cfg.Netns), &st)
		return st.Ino, err
	}
	err := syscall.Stat("/proc/thread-self/ns/net", &st)
	return st.Ino, err
}

// probeDNS sends one CHAOS TXT version.bind query to addr from a socket created inside the Reader's
// namespace and returns the answer's rcode. Any well-formed answer counts: dnsmasq is answering.
func (r *Reader) probeDNS(ctx context.Context, addr string) (int, error) {
	var conn net.Conn
	if err := inNetns(r.cfg.Netns, func() error {
		var err error
		conn, err = net.Dial("udp", addr) // a UDP "dial" only binds the socket in this namespace
		return err
	}); err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	deadline := time.Now().Add(r.cfg.DNSTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	q, id := dnsQuery()
	if _, err := conn.Write(q); err != nil {
		return 0, err
	}
	buf := make([]byte, 1500)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return 0, err
		}
		if n >= 12 && binary.BigEndian.Uint16(buf[:2]) == id && buf[2]&0x80 != 0 {
			return int(buf[3] & 0x0f), nil
		}
	}
}

// dnsQuery builds a CHAOS-class TXT query for version.bind with a random id.
func dnsQuery() ([]byte, uint16) {
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	q := []byte{idb[0], idb[1], 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, label := range []string{"version", "bind"} {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	q = append(q, 0, 0, 16, 0, 3) // QTYPE TXT, QCLASS CH
	return q, id
}
