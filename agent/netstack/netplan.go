package netstack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// netplanDirs in increasing precedence: a file name in a later directory replaces the same name
// in earlier ones; all files are then merged in file-name order.
var netplanDirs = []string{"lib/netplan", "etc/netplan", "run/netplan"}

type netplanEthernet struct {
	Renderer string `yaml:"renderer"`
	Match    struct {
		Name       string `yaml:"name"`
		MACAddress string `yaml:"macaddress"`
		Driver     string `yaml:"driver"`
	} `yaml:"match"`
	SetName string `yaml:"set-name"`
}

type netplanDoc struct {
	Network struct {
		Renderer  string                     `yaml:"renderer"`
		Ethernets map[string]netplanEthernet `yaml:"ethernets"`
	} `yaml:"network"`
}

type netplanEntry struct {
	id, file, renderer string
	eth                netplanEthernet
}

type netplanConfig struct {
	installed bool // some netplan YAML exists
	renderer  string
	entries   map[string]*netplanEntry
}

func readNetplan(root string) (netplanConfig, error) {
	c := netplanConfig{entries: map[string]*netplanEntry{}}
	byName := map[string]string{}
	for _, d := range netplanDirs {
		matches, _ := filepath.Glob(filepath.Join(root, d, "*.yaml"))
		for _, m := range matches {
			byName[filepath.Base(m)] = "/" + d + "/" + filepath.Base(m)
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	var errs []error
	for _, n := range names {
		guest := byName[n]
		b, err := os.ReadFile(filepath.Join(root, guest))
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", guest, err))
			continue
		}
		c.installed = true
		var doc netplanDoc
		if err := yaml.Unmarshal(b, &doc); err != nil {
			errs = append(errs, fmt.Errorf("parse %s: %w", guest, err))
			continue
		}
		if doc.Network.Renderer != "" {
			c.renderer = doc.Network.Renderer
		}
		for id, eth := range doc.Network.Ethernets {
			c.entries[id] = &netplanEntry{id: id, file: guest, renderer: eth.Renderer, eth: eth}
		}
	}
	return c, errors.Join(errs...)
}

// match returns the netplan ethernet entry that applies to the interface, with its effective
// renderer (entry, then global, then netplan's default networkd).
func (c netplanConfig) match(name, mac, driver string) *netplanEntry {
	ids := make([]string, 0, len(c.entries))
	for id := range c.entries {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := c.entries[id]
		m := e.eth.Match
		var ok bool
		if m.Name == "" && m.MACAddress == "" && m.Driver == "" {
			ok = id == name
		} else {
			ok = true
			if m.Name != "" {
				hit, _ := filepath.Match(m.Name, name)
				ok = ok && hit
			}
			if m.MACAddress != "" {
				ok = ok && strings.EqualFold(m.MACAddress, mac)
			}
			if m.Driver != "" {
				hit, _ := filepath.Match(m.Driver, driver)
				ok = ok && hit
			}
		}
		if e.eth.SetName != "" && e.eth.SetName == name {
			ok = true
		}
		if ok {
			out := *e
			if out.renderer == "" {
				out.renderer = c.renderer
			}
			if out.renderer == "" {
				out.renderer = "networkd"
			}
			return &out
		}
	}
	return nil
}

// stale returns ids of entries without a match section that name no existing interface.
func (c netplanConfig) stale(existing map[string]bool) []string {
	var out []string
	for id, e := range c.entries {
		m := e.eth.Match
		if m.Name == "" && m.MACAddress == "" && m.Driver == "" && !existing[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
