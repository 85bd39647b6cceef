package doccheck

import (
	"bufio"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// flagSpec is a flag as --help lists it.
type flagSpec struct {
	long  string
	short string // "" if none
	value bool   // it takes a value (--config string)
}

// flagLineRE reads a flag line of --help: "  -c, --config string   usage"
// or "      --json   usage". Group 1 is the short name, 2 the long one, 3
// the value's type, if any.
var flagLineRE = regexp.MustCompile(`^\s+(?:-([a-zA-Z]), )?--([a-z0-9][a-z0-9-]*)(?: ([a-zA-Z]+))?(?:\s{2,}|$)`)

// command is what --help says of one command: its subcommands and its
// own flags.
type command struct {
	subs  []string
	flags []flagSpec
}

// CLI is the command tree of a binary, read from its --help outputs.
type CLI struct {
	cmds map[string]*command // by path, "" for the root
}

// ReadCLI walks the command tree from the root's --help down.
func ReadCLI(help func(path []string) (string, error)) (*CLI, error) {
	c := &CLI{cmds: map[string]*command{}}
	var walk func(path []string) error
	walk = func(path []string) error {
		out, err := help(path)
		if err != nil {
			return err
		}
		cmd := parseCommand(out)
		c.cmds[strings.Join(path, " ")] = cmd
		for _, s := range cmd.subs {
			if s == "help" {
				// help takes command names, and the root's flags.
				c.cmds[strings.Join(append(append([]string(nil), path...), s), " ")] = &command{flags: cmd.flags}
				continue
			}
			if err := walk(append(append([]string(nil), path...), s)); err != nil {
				return err
			}
		}
		return nil
	}
	return c, walk(nil)
}

// parseCommand reads one --help output; the flags are those under
// "Flags:" and "Global Flags:" both, so that each command has all the
// flags it takes.
func parseCommand(out string) *command {
	cmd := &command{}
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
			cmd.subs = append(cmd.subs, strings.Fields(line)[0])
		case section == "Flags:" || section == "Global Flags:":
			if m := flagLineRE.FindStringSubmatch(line); m != nil {
				cmd.flags = append(cmd.flags, flagSpec{long: m[2], short: m[1], value: m[3] != ""})
			}
		}
	}
	return cmd
}

// flag finds the flag tok ("--name", "--name=v", "-c") of cmd.
func (cmd *command) flag(tok string) (flagSpec, bool) {
	name, _, _ := strings.Cut(tok, "=")
	i := slices.IndexFunc(cmd.flags, func(f flagSpec) bool {
		return name == "--"+f.long || f.short != "" && name == "-"+f.short
	})
	if i < 0 {
		return flagSpec{}, false
	}
	return cmd.flags[i], true
}

// shellEnd are the words that end a command on a shell line.
var shellEnd = []string{"|", "||", "&&", ";", ">", ">>", "2>&1", "#", "&"}

// CheckLine checks a shell line that runs the binary named name: its
// subcommands and flags must be the binary's. A line that does not run
// name (after a "$ " prompt, sudo and VAR=value words) is no concern of
// it and passes.
func (c *CLI) CheckLine(name, line string) error {
	words := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "$ "))
	for len(words) > 0 && (words[0] == "sudo" || strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-")) {
		words = words[1:]
	}
	if len(words) == 0 || words[0] != name && !strings.HasSuffix(words[0], "/"+name) {
		return nil
	}
	path := []string{}
	cmd := c.cmds[""]
	args := false // a positional argument was seen: no more subcommands
	for i := 1; i < len(words); i++ {
		w := words[i]
		if slices.Contains(shellEnd, w) || strings.HasPrefix(w, "#") || strings.IndexAny(w, "<>") == 0 || strings.HasPrefix(w, "2>") || strings.HasPrefix(w, "&>") {
			break
		}
		// "cmd --flag;" ends the command with the word.
		last := false
		if t, ok := strings.CutSuffix(w, ";"); ok {
			w, last = t, true
		}
		if strings.HasPrefix(w, "-") && len(w) > 1 {
			if w == "--help" || w == "-h" {
				continue
			}
			f, ok := cmd.flag(w)
			if !ok {
				return fmt.Errorf("%s has no flag %s", strings.Join(append([]string{name}, path...), " "), strings.SplitN(w, "=", 2)[0])
			}
			if f.value && !strings.Contains(w, "=") {
				i++
			}
			if last {
				break
			}
			continue
		}
		if !args && slices.Contains(cmd.subs, w) {
			path = append(path, w)
			cmd = c.cmds[strings.Join(path, " ")]
			if last {
				break
			}
			continue
		}
		if !args && len(cmd.subs) > 0 {
			return fmt.Errorf("%s has no command %q", strings.Join(append([]string{name}, path...), " "), w)
		}
		args = true
		if last {
			break
		}
	}
	return nil
}

// Line is a line of a documentation file.
type Line struct {
	N    int
	Text string
}

// ShellLines returns the lines of a Markdown file's code blocks that may
// run a command: every line of sh, bash and shell blocks, and the lines
// of other blocks (outputs) that start with a "$ " prompt. Yaml and json
// blocks hold none.
func ShellLines(md []byte) ([]Line, error) {
	blocks, err := Blocks(md)
	if err != nil {
		return nil, err
	}
	var out []Line
	for _, b := range blocks {
		switch b.Lang {
		case "yaml", "yml", "json":
			continue
		}
		shell := b.Lang == "sh" || b.Lang == "bash" || b.Lang == "shell"
		for i, l := range strings.Split(strings.TrimSuffix(b.Text, "\n"), "\n") {
			if shell || strings.HasPrefix(l, "$ ") {
				out = append(out, Line{b.Line + 1 + i, l})
			}
		}
	}
	return out, nil
}

// CommentLines returns the commands a YAML file's comments show: comment
// lines whose text is indented by three spaces or more ("#   dockerfence
// check FILE").
func CommentLines(yaml []byte) []Line {
	var out []Line
	for i, l := range strings.Split(string(yaml), "\n") {
		t := strings.TrimSpace(l)
		if rest, ok := strings.CutPrefix(t, "#   "); ok {
			out = append(out, Line{i + 1, strings.TrimSpace(rest)})
		}
	}
	return out
}
