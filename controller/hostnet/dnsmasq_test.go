package hostnet

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

func natNet(name, ip string, dns bool) snapshot.Network {
	return snapshot.Network{Name: name, Active: true, Forward: snapshot.ForwardNAT, DNSEnabled: dns, Bridge: "virbr9",
		IPs: []snapshot.NetworkIP{{Family: 4, Address: ip, Prefix: 24, Subnet: "127.0.0.0/24",
			DHCPRanges: []snapshot.DHCPRange{{Start: "127.0.0.10", End: "127.0.0.20"}}}}}
}

// fakeDNS answers every query on 127.0.0.1 with the same id and rcode, like dnsmasq would.
func fakeDNS(t *testing.T, rcode byte) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			resp := append([]byte(nil), buf[:n]...)
			resp[2] |= 0x80
			resp[3] = rcode
			_, _ = pc.WriteTo(resp, addr)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// fakeProc builds a /proc with the given processes: pid -> (comm, state, cmdline).
func fakeProc(t *testing.T, procs map[int][3]string) string {
	t.Helper()
	dir := t.TempDir()
	for pid, p := range procs {
		writeFiles(t, dir, map[string]string{
			strconv.Itoa(pid) + "/stat":    strconv.Itoa(pid) + " (" + p[0] + ") " + p[1] + " 1 1 1",
			strconv.Itoa(pid) + "/cmdline": strings.ReplaceAll(p[2], " ", "\x00"),
		})
	}
	return dir
}

func TestDnsmasq(t *testing.T) {
	answering := fakeDNS(t, 0)
	silentConn, err := net.ListenPacket("udp", "127.0.0.1:0") // bound, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = silentConn.Close() }()
	silent := silentConn.LocalAddr().(*net.UDPAddr).Port
	conf := "/usr/sbin/dnsmasq --conf-file=/var/lib/libvirt/dnsmasq/default.conf --leasefile-ro"
	tests := []struct {
		name     string
		pidfile  string
		procs    map[int][3]string
		port     int
		dns      bool
		running  bool
		answers  bool
		evidence []string
	}{
		{"healthy", "4242\n", map[int][3]string{4242: {"dnsmasq", "S", conf}}, answering, true, true, true,
			[]string{"pid=4242", "running=true", "dns_rcode=0"}},
		{"pid file missing", "", nil, answering, true, false, true, []string{"pidfile_error=missing", "running=false"}},
		{"stale pid reused by another program", "4242", map[int][3]string{4242: {"bash", "S", "bash"}}, answering, true, false, true,
			[]string{"process=not-dnsmasq:bash"}},
		{"zombie", "4242", map[int][3]string{4242: {"dnsmasq", "Z", ""}}, answering, true, false, true, []string{"process=zombie"}},
		{"dnsmasq of another network", "4242", map[int][3]string{4242: {"dnsmasq", "S", "dnsmasq --conf-file=/x/other.conf"}},
			answering, true, false, true, []string{"process=other-conf"}},
		{"running but DNS silent", "4242", map[int][3]string{4242: {"dnsmasq", "S", conf}}, silent, true, true, false,
			[]string{"dns_error=timeout"}},
		{"DNS disabled: no probe", "4242", map[int][3]string{4242: {"dnsmasq", "S", conf}}, silent, false, true, false,
			[]string{"dns=disabled"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.pidfile != "" {
				writeFiles(t, root, map[string]string{"run/libvirt/network/default.pid": tc.pidfile})
			}
			r, err := New(Config{Handle: nilHandle(), Netns: netns.None(), Sysctl: ProcSysctl{}, FSRoot: root,
				ProcDir: fakeProc(t, tc.procs), DNSPort: tc.port, DNSTimeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			st := r.Dnsmasq(context.Background(), natNet("default", "127.0.0.1", tc.dns))
			if !st.Checked || st.Running != tc.running || st.AnswersDNS != tc.answers {
				t.Fatalf("status %+v, want running=%v answers=%v", st, tc.running, tc.answers)
			}
			for _, e := range tc.evidence {
				if !strings.Contains(st.Evidence, e) {
					t.Errorf("evidence %q lacks %q", st.Evidence, e)
				}
			}
		})
	}
}

func TestDnsmasqAllSelectsNetworks(t *testing.T) {
	port := fakeDNS(t, 5)
	r, _ := New(Config{Handle: nilHandle(), Netns: netns.None(), Sysctl: ProcSysctl{}, FSRoot: t.TempDir(),
		ProcDir: t.TempDir(), DNSPort: port, DNSTimeout: 300 * time.Millisecond})
	inactive := natNet("off", "127.0.0.1", true)
	inactive.Active = false
	bridged := snapshot.Network{Name: "br", Active: true, Forward: snapshot.ForwardBridge, Bridge: "br0", DNSEnabled: true}
	noIP := snapshot.Network{Name: "noip", Active: true, Forward: snapshot.ForwardNAT, DNSEnabled: true}
	got := r.DnsmasqAll(context.Background(), []snapshot.Network{natNet("a", "127.0.0.1", true), inactive, bridged, noIP,
		natNet("b", "127.0.0.1", true)})
	if len(got) != 2 || !got["a"].AnswersDNS || !got["b"].AnswersDNS || got["a"].Running {
		t.Fatalf("DnsmasqAll = %+v", got)
	}
	if !strings.Contains(got["a"].Evidence, "dns_rcode=5") {
		t.Fatalf("a REFUSED answer still counts as answering, with its rcode: %q", got["a"].Evidence)
	}
}

func TestDNSQuery(t *testing.T) {
	q, id := dnsQuery()
	if binary.BigEndian.Uint16(q[:2]) != id || binary.BigEndian.Uint16(q[4:6]) != 1 {
		t.Fatalf("header %x", q[:12])
	}
	want := "\x07version\x04bind\x00\x00\x10\x00\x03"
	if string(q[12:]) != want {
		t.Fatalf("question %q, want %q", q[12:], want)
	}
}

func TestReadPID(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]string{"ok": " 77 \n", "bad": "x", "neg": "-3"} {
		_ = os.WriteFile(dir+"/"+name, []byte(c), 0o644)
	}
	if p, err := readPID(dir + "/ok"); p != 77 || err != nil {
		t.Fatalf("ok: %d %v", p, err)
	}
	for _, n := range []string{"bad", "neg", "missing"} {
		if _, err := readPID(dir + "/" + n); err == nil {
			t.Errorf("%s: no error", n)
		}
	}
}
