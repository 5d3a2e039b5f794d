package managedfile

import (
	"strings"
)

// maxDiffLines bounds the line diff; larger files are summarised.
const maxDiffLines = 2000

// Diff returns a line diff of the operation for display: "-" lines were removed, "+" lines added,
// " " lines kept; empty when nothing changed.
func (r Result) Diff() string {
	if !r.Changed {
		return ""
	}
	return LineDiff(string(r.Old), string(r.New))
}

// LineDiff returns a minimal line diff from a to b (longest common subsequence), each line prefixed
// by "-", "+" or " ".
func LineDiff(a, b string) string {
	al, bl := splitLines(a), splitLines(b)
	if len(al) > maxDiffLines || len(bl) > maxDiffLines {
		return "(file too large for a line diff)\n"
	}
	// lcs[i][j] = length of the LCS of al[i:] and bl[j:].
	lcs := make([][]int, len(al)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(bl)+1)
	}
	for i := len(al) - 1; i >= 0; i-- {
		for j := len(bl) - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	i, j := 0, 0
	for i < len(al) || j < len(bl) {
		switch {
		case i < len(al) && j < len(bl) && al[i] == bl[j]:
			sb.WriteString(" " + al[i] + "\n")
			i++
			j++
		case j < len(bl) && (i == len(al) || lcs[i][j+1] >= lcs[i+1][j]):
			sb.WriteString("+" + bl[j] + "\n")
			j++
		default:
			sb.WriteString("-" + al[i] + "\n")
			i++
		}
	}
	return sb.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
