package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// accessTokenFlags take a Meta access token as --access-token T, from
// standard input with --access-token -, or from --access-token-file PATH:
// the last two keep it out of ps and the shell history.
type accessTokenFlags struct{ value, file string }

func (f *accessTokenFlags) register(fs *flag.FlagSet, usage string) {
	fs.StringVar(&f.value, "access-token", "", usage+`; "-" reads it from standard input`)
	fs.StringVar(&f.file, "access-token-file", "", "read the access token from this file (e.g. a mounted secret)")
}

// given reports whether a token was asked for at all.
func (f *accessTokenFlags) given() bool { return f.value != "" || f.file != "" }

// read returns the token ("" when none was given). A token typed on the
// command line works but earns a warning.
func (f *accessTokenFlags) read(stdin io.Reader, stderr io.Writer) (string, error) {
	var tok string
	switch {
	case f.value != "" && f.file != "":
		return "", errors.New("--access-token and --access-token-file: give one of them")
	case f.file != "":
		data, err := readLimited(f.file)
		if err != nil {
			return "", fmt.Errorf("--access-token-file: %w", err)
		}
		tok = strings.TrimSpace(string(data))
	case f.value == "-":
		line, err := bufio.NewReader(io.LimitReader(stdin, 64<<10)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("--access-token -: read standard input: %w", err)
		}
		tok = strings.TrimSpace(line)
	default:
		if f.value != "" {
			fmt.Fprintln(stderr, "note: a token on the command line shows in ps and the shell history; prefer --access-token-file PATH or --access-token - (standard input)")
		}
		return strings.TrimSpace(f.value), nil
	}
	if tok == "" {
		return "", errors.New("the access token is empty")
	}
	return tok, nil // sitecfg.AccessToken checks the rest, as for the dashboard
}

// readLimited reads a small file (a token, a secret).
func readLimited(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return io.ReadAll(io.LimitReader(fh, 64<<10))
}
