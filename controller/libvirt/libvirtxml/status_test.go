package libvirtxml

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// A status file as libvirt's leaseshelper writes it (format from libvirt 9.0's
// src/network/leaseshelper.c: a JSON array, pretty-printed).
const statusSample = `[
  {
    "ip-address": "192.168.122.177",
    "mac-address": "52:54:00:AB:CD:EF",
    "hostname": "guest1",
    "client-id": "ff:56:50:4d:98:00:02:00:00:ab:11:aa:bb",
    "expiry-time": 1795000000
  },
  {
    "iaid": "1234",
    "ip-address": "fd00:10::99",
    "mac-address": "52:54:00:ab:cd:ef",
    "client-id": "00:04:aa",
    "expiry-time": 1795000100
  }
]`

func TestParseDnsmasqStatus(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []snapshot.Lease
	}{
		{"empty file (what a fresh network has)", "", nil},
		{"empty array", "[]", nil},
		{"v4 and v6", statusSample, []snapshot.Lease{
			{MAC: "52:54:00:ab:cd:ef", IP: "192.168.122.177", Prefix: 24, Family: 4, Hostname: "guest1", Expiry: time.Unix(1795000000, 0).UTC()},
			{MAC: "52:54:00:ab:cd:ef", IP: "fd00:10::99", Prefix: 64, Family: 6, Expiry: time.Unix(1795000100, 0).UTC()},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDnsmasqStatus([]byte(tc.in), 24, 64)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"{", `[{"ip-address":"nope"}]`} {
		if _, err := ParseDnsmasqStatus([]byte(bad), 24, 64); err == nil || !strings.Contains(err.Error(), "dnsmasq status") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func FuzzParseDnsmasqStatus(f *testing.F) {
	f.Add([]byte(statusSample))
	f.Add([]byte("[]"))
	f.Fuzz(func(t *testing.T, in []byte) {
		ls, err := ParseDnsmasqStatus(in, 24, 64)
		if err != nil {
			return
		}
		for _, l := range ls {
			if l.Family != 4 && l.Family != 6 {
				t.Fatalf("family %d", l.Family)
			}
		}
	})
}
