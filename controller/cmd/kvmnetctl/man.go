package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func newManCmd(root *cobra.Command) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "man",
		Short: "Write man pages for kvmnetctl and its commands into a directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return Usage(fmt.Errorf("--dir is required"))
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create man page directory %s: %w", dir, err)
			}
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "KVMNETCTL", Section: "1", Source: "kvmnet " + version, Manual: "kvmnet manual"}
			if err := doc.GenManTree(root, hdr, dir); err != nil {
				return fmt.Errorf("write man pages to %s: %w", dir, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "man pages written to %s\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write the man pages to (created if missing)")
	return cmd
}
