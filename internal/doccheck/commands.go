package doccheck

import (
	"bufio"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Help is what a command's --help output says of it.
type Help struct {
	// Commands are the names under "Available Commands:", without help.
	Commands []string
	// Flags are the long names under "Flags:", without --help and the
	// global flags (which --help lists under "Global Flags:").
	Flags []string
}

// flagRE finds a flag's long name.
var flagRE = regexp.MustCompile(`--([a-z0-9][a-z0-9-]*)`)

// ParseHelp reads the output of a cobra command's --help.
func ParseHelp(out string) Help {
	var h Help
	section := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			section = ""
		case !strings.HasPrefix(line, " "):
			section = strings.TrimSpace(line)
		case section == "Available Commands:":
			if name := strings.Fields(line)[0]; name != "help" {
				h.Commands = append(h.Commands, name)
			}
		case section == "Flags:":
			// The flag is the first --name on its line; its usage may name others.
			if m := flagRE.FindStringSubmatch(line); m != nil && m[1] != "help" {
				h.Flags = append(h.Flags, m[1])
			}
		}
	}
	return h
}

// Row is a row of the README's commands table.
type Row struct {
	// Line is the row's line in the Markdown file.
	Line int
	// Command is the first cell's first code span, such as
	// "dockerfence apply [-c FILE] [--dry-run]", with \| unescaped.
	Command string
	// Text is the whole row.
	Text string
}

// CommandsTable returns the rows of the table that follows the heading
// "## Commands" whose first cell starts with `dockerfence.
func CommandsTable(md []byte) ([]Row, error) {
	var rows []Row
	in, n := false, 0
	sc := bufio.NewScanner(strings.NewReader(string(md)))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			if in && len(rows) > 0 {
				break
			}
			in = strings.TrimSpace(line) == "## Commands"
			continue
		}
		if !in {
			continue
		}
		if len(rows) > 0 && !strings.HasPrefix(line, "|") {
			break
		}
		if !strings.HasPrefix(line, "| `dockerfence") {
			continue
		}
		rest := strings.TrimPrefix(line, "| `")
		end := strings.IndexByte(rest, '`')
		if end < 0 {
			return nil, fmt.Errorf("line %d: the command's code span is not closed", n)
		}
		rows = append(rows, Row{Line: n, Command: strings.ReplaceAll(rest[:end], `\|`, "|"), Text: line})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no commands table (rows | `dockerfence ...` | after ## Commands)")
	}
	return rows, sc.Err()
}

// Covers reports whether the row's command is the command path (such as
// ["completion", "bash"]): each word of path is the row's word at its
// place, or one of its alternatives ("bash|zsh|fish").
func (r Row) Covers(path []string) bool {
	words := strings.Fields(strings.TrimPrefix(r.Command, "dockerfence"))
	if len(words) < len(path) {
		return false
	}
	for i, p := range path {
		found := false
		for _, alt := range strings.Split(words[i], "|") {
			if alt == p {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Flags returns the long flags the row's command names, such as dry-run
// for "dockerfence apply [-c FILE] [--dry-run]".
func (r Row) Flags() []string {
	var out []string
	for _, m := range flagRE.FindAllStringSubmatch(r.Command, -1) {
		out = append(out, m[1])
	}
	return out
}

// CheckCommands holds the commands table to the commands: help returns
// the --help output of a command path ([] for the root). Every command
// that has no subcommands (help aside) must have a row, and every one of
// its flags must be in that row; every row must be a command, and every
// flag its command cell names must be the command's or a global one. It
// returns the root's flags, the global ones, for the caller to find
// elsewhere in the documentation.
func CheckCommands(rows []Row, help func(path []string) (string, error)) (global []string, errs []error) {
	root, err := help(nil)
	if err != nil {
		return nil, []error{err}
	}
	rh := ParseHelp(root)
	global = rh.Flags
	covered := make([]bool, len(rows))
	var walk func(path []string, h Help)
	walk = func(path []string, h Help) {
		for _, c := range h.Commands {
			p := append(append([]string(nil), path...), c)
			out, err := help(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ch := ParseHelp(out)
			if len(ch.Commands) > 0 {
				if len(ch.Flags) > 0 {
					errs = append(errs, fmt.Errorf("dockerfence %s has subcommands and flags %v of its own: the table has no row for it", strings.Join(p, " "), ch.Flags))
				}
				walk(p, ch)
				continue
			}
			i := slices.IndexFunc(rows, func(r Row) bool { return r.Covers(p) })
			if i < 0 {
				errs = append(errs, fmt.Errorf("dockerfence %s: no row of the commands table", strings.Join(p, " ")))
				continue
			}
			covered[i] = true
			for _, f := range ch.Flags {
				if !strings.Contains(rows[i].Text, "--"+f) {
					errs = append(errs, fmt.Errorf("line %d: dockerfence %s: its flag --%s is not in the row", rows[i].Line, strings.Join(p, " "), f))
				}
			}
			for _, f := range rows[i].Flags() {
				if !slices.Contains(ch.Flags, f) && !slices.Contains(global, f) {
					errs = append(errs, fmt.Errorf("line %d: dockerfence %s has no flag --%s", rows[i].Line, strings.Join(p, " "), f))
				}
			}
		}
	}
	walk(nil, rh)
	for i, r := range rows {
		if !covered[i] {
			errs = append(errs, fmt.Errorf("line %d: %s is no command of dockerfence --help", r.Line, r.Command))
		}
	}
	return global, errs
}
