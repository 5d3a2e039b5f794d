package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kvmnet/kvmnet/controller/output"
)

// fixIO holds where a fix command talks to the user: with -o json|yaml the human text goes to
// stderr so stdout carries only the result document.
type fixIO struct {
	// human prints fix events, prompts and the host adapters' own lines.
	human   *output.FixPrinter
	confirm func(string) (bool, error)
}

// newFixIO sets up output and confirmation for a fix command. Without --yes a terminal is required
// to ask; otherwise the command refuses (exit 2) instead of changing anything unasked.
func newFixIO(g *Globals, stdin io.Reader, yes, dryRun bool) (fixIO, error) {
	var f fixIO
	w := g.Stdout
	if g.Format.Structured() {
		w = g.Stderr
	}
	f.human = output.NewFixPrinter(w, output.IsTerminal(w))
	if yes || dryRun {
		return f, nil
	}
	if !isTerminalReader(stdin) {
		return f, Usage(errors.New("standard input is not a terminal, so kvmnetctl cannot ask before changing anything: " +
			"pass --yes to apply, or --dry-run to preview"))
	}
	r := bufio.NewReader(stdin)
	f.confirm = func(q string) (bool, error) {
		f.human.Prompt(q)
		line, err := r.ReadString('\n')
		if err != nil && line == "" {
			return false, fmt.Errorf("read answer: %w", err)
		}
		a := strings.ToLower(strings.TrimSpace(line))
		return a == "y" || a == "yes", nil
	}
	return f, nil
}

func isTerminalReader(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && output.IsTerminal(f)
}
