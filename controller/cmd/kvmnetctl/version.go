package main

import (
	"runtime"

	"github.com/spf13/cobra"
)

// versionInfo is what `kvmnetctl version` prints.
type versionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

func (v versionInfo) Headers() []string { return []string{"VERSION", "GO", "PLATFORM"} }
func (v versionInfo) Rows() [][]string  { return [][]string{{v.Version, v.Go, v.OS + "/" + v.Arch}} }

func newVersionCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of kvmnetctl",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := g.Renderer()
			return r.Render(versionInfo{Version: version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH})
		},
	}
}
