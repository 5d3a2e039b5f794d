package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		file    *string // nil: no file
		want    func(*Config)
		wantErr []string
	}{
		{name: "missing file gives defaults", file: nil, want: func(*Config) {}},
		{name: "empty file gives defaults", file: ptr(""), want: func(*Config) {}},
		{name: "report-only", file: ptr("allow_apply: false\n"), want: func(c *Config) { c.AllowApply = false }},
		{name: "listen replaced and duration parsed",
			file: ptr("listen: [\"unix:/run/kvmnet/agent.sock\", \"vsock:7000\"]\ndefault_rollback_timeout: 2m\nlog_level: debug\n"),
			want: func(c *Config) {
				c.Listen = []string{"unix:/run/kvmnet/agent.sock", "vsock:7000"}
				c.DefaultRollbackTimeout = 2 * time.Minute
				c.LogLevel = "debug"
			}},
		{name: "host keepalive parsed", file: ptr("host_keepalive: 5m\n"),
			want: func(c *Config) { c.HostKeepalive = 5 * time.Minute }},
		{name: "unknown key is named", file: ptr("allow_aply: false\n"), wantErr: []string{"unknown key allow_aply", "allow_apply"}},
		{name: "wrong type", file: ptr("allow_apply: maybe\n"), wantErr: []string{"maybe"}},
		{name: "bad yaml", file: ptr("listen: [\n"), wantErr: []string{"invalid YAML"}},
		{name: "invalid values are validated", file: ptr("log_level: loud\ndefault_rollback_timeout: 1s\n"),
			wantErr: []string{`log_level "loud"`, "default_rollback_timeout 1s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "agent.yaml")
			if tc.file != nil {
				if err := os.WriteFile(p, []byte(*tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Load(p)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Load = %+v, want error containing %q", got, tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := Default()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "read "+dir) {
		t.Fatalf("Load(directory) error = %v, want a read error naming it", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{name: "defaults are valid", mod: func(*Config) {}},
		{name: "all transports", mod: func(c *Config) {
			c.Listen = []string{"unix:/x.sock", "vsock:1", "virtio-serial:/dev/virtio-ports/a", "serial:/dev/b"}
		}},
		{name: "relative unix path", mod: func(c *Config) { c.Listen = []string{"unix:x.sock"} }, wantErr: "must be absolute"},
		{name: "no scheme", mod: func(c *Config) { c.Listen = []string{"/x.sock"} }, wantErr: "want unix:/path"},
		{name: "unknown transport", mod: func(c *Config) { c.Listen = []string{"tcp:1.2.3.4:5"} }, wantErr: `unknown transport "tcp"`},
		{name: "vsock port zero", mod: func(c *Config) { c.Listen = []string{"vsock:0"} }, wantErr: "vsock port"},
		{name: "vsock port junk", mod: func(c *Config) { c.Listen = []string{"vsock:12x"} }, wantErr: "vsock port"},
		{name: "vsock port too big", mod: func(c *Config) { c.Listen = []string{"vsock:4294967296"} }, wantErr: "vsock port"},
		{name: "relative root", mod: func(c *Config) { c.Root = "tmp" }, wantErr: `root "tmp"`},
		{name: "relative state dir", mod: func(c *Config) { c.StateDir = "var" }, wantErr: `state_dir "var"`},
		{name: "rollback too long", mod: func(c *Config) { c.DefaultRollbackTimeout = 2 * time.Hour }, wantErr: "between 10s and 1h"},
		{name: "bad log level", mod: func(c *Config) { c.LogLevel = "trace" }, wantErr: `log_level "trace"`},
		{name: "host keepalive on", mod: func(c *Config) { c.HostKeepalive = 5 * time.Minute }},
		{name: "host keepalive too short", mod: func(c *Config) { c.HostKeepalive = 2 * time.Second }, wantErr: "host_keepalive 2s: must be 0 (no pings) or at least 10s"},
		{name: "host keepalive negative", mod: func(c *Config) { c.HostKeepalive = -time.Second }, wantErr: "host_keepalive -1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func ptr(s string) *string { return &s }
