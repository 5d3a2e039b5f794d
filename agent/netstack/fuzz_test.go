package netstack

import (
	"bytes"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzNeutraliseNetplan: any YAML either is refused or yields YAML that still parses and no longer
// defines the removed id under network.ethernets.
func FuzzNeutraliseNetplan(f *testing.F) {
	f.Add([]byte(cloudInitStale), "ens3")
	f.Add([]byte("network:\n  ethernets:\n    eth0: {dhcp4: true}\n"), "eth0")
	f.Add([]byte("network: [1, 2]\n"), "x")
	f.Add([]byte("a: &x {b: *x}\n"), "b")
	f.Fuzz(func(t *testing.T, in []byte, id string) {
		out, err := NeutraliseNetplan(in, []string{id}, ens2)
		if err != nil {
			return
		}
		var doc netplanDoc
		if err := yaml.Unmarshal(out, &doc); err != nil {
			t.Fatalf("neutralised copy does not parse: %v\n%s", err, out)
		}
		if _, ok := doc.Network.Ethernets[id]; ok {
			t.Fatalf("id %q still defined:\n%s", id, out)
		}
	})
}

// FuzzNeutraliseIfupdown: the managed copy never defines a removed name and keeps every other
// iface stanza.
func FuzzNeutraliseIfupdown(f *testing.F) {
	f.Add("auto lo\niface lo inet loopback\nallow-hotplug eth0\niface eth0 inet dhcp\n  hostname x\n", "eth0")
	f.Add("iface \\\n eth0 inet manual\n", "eth0")
	f.Add("mapping eth0\n  script x\niface eth0 inet dhcp\n", "eth0")
	f.Fuzz(func(t *testing.T, in, name string) {
		if strings.ContainsAny(name, " \t\n\\#") || name == "" {
			return
		}
		out := NeutraliseIfupdown([]byte(in), []string{name}, true, ens2)
		root := build(t, map[string]string{"etc/network/interfaces": string(out)})
		cfg, _ := readIfupdown(root)
		if _, ok := cfg.stanzas[name]; ok && !strings.Contains(in, "\\") {
			t.Fatalf("%q still has a stanza in\n%s", name, out)
		}
		if !bytes.Contains(out, []byte(IfupdownSource)) {
			t.Fatal("source line missing")
		}
	})
}

// FuzzNeutraliseNetworkd: the managed copy keeps the [Match] section exactly (it must keep
// selecting nothing) and has no other active section.
func FuzzNeutraliseNetworkd(f *testing.F) {
	f.Add([]byte("[Match]\nName=ens3\n[Network]\nDHCP=yes\n"))
	f.Add([]byte("[Network]\nDHCP=yes\n[Match]\nMACAddress=52:54:00:00:00:09\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := NeutraliseNetworkd(in, ens2)
		before, after := parseMatch(in), parseMatch(out)
		if len(before) != len(after) {
			t.Fatalf("[Match] changed: %v → %v", before, after)
		}
		for k, v := range before {
			if strings.Join(after[k], " ") != strings.Join(v, " ") {
				t.Fatalf("[Match] %s changed: %v → %v", k, v, after[k])
			}
		}
	})
}
