package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/capirelay/capirelay/internal/offline"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// runImport implements "capirelay import": offline conversions from a CSV
// or JSON-lines file into a site's outbox, where the running relay's
// dispatcher picks them up. Bad rows are written, by line and column, to
// the errors file and do not fail the command; an unreadable file, an
// unknown site or a store failure does.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("import", stderr, "import --site KEY [--errors FILE] [--format csv|jsonl] FILE")
	var sf storeFlags
	sf.register(fs, getenv)
	key := fs.String("site", "", "site key (required)")
	errorsPath := fs.String("errors", "", "CSV file for rejected rows: line, column, reason (default FILE.errors.csv)")
	format := fs.String("format", "", "csv or jsonl (default from the file name, else from the content)")
	// Flags may come before or after FILE.
	var files []string
	for rest := args; ; {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files, rest = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	switch {
	case *key == "":
		return usageError(stderr, fs.Usage, "import: --site is required")
	case len(files) != 1:
		return usageError(stderr, fs.Usage, "import: %s", oneArgument("FILE", files))
	}
	path := files[0]
	if *errorsPath == "" {
		*errorsPath = path + ".errors.csv"
	}

	st, err := sf.open(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	site, err := st.Site(ctx, *key)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("import: no site %q (see capirelay site list)", *key)
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}

	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	var size int64 = -1
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	progress := newImportProgress(stderr, size)
	br := bufio.NewReaderSize(progress.reader(f), 64<<10)
	if *format == "" {
		head, _ := br.Peek(512)
		*format = offline.DetectFormat(path, head)
	}
	rd, err := offline.NewReader(br, strings.ToLower(*format), offline.Options{SiteKey: site.Key})
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	if ig := rd.Ignored(); len(ig) > 0 {
		fmt.Fprintf(stderr, "import: ignoring unknown columns: %s\n", strings.Join(ig, ", "))
	}

	ef, err := os.Create(*errorsPath)
	if err != nil {
		return fmt.Errorf("import: errors file: %w", err)
	}
	defer ef.Close()
	ew := csv.NewWriter(ef)
	// Line numbers, column names and our own reasons only: never values.
	if err := ew.Write([]string{"line", "column", "reason"}); err != nil {
		return fmt.Errorf("import: errors file: %w", err)
	}

	im := &offline.Importer{
		Pipeline: pipeline.New(st),
		Site:     site,
		Reject: func(e *offline.RowError) error {
			return ew.Write([]string{strconv.Itoa(e.Line), e.Column, e.Reason})
		},
		Progress: progress.update,
	}
	start := time.Now()
	stats, runErr := im.Run(ctx, rd)
	elapsed := time.Since(start)
	progress.finish()
	ew.Flush()
	if err := errors.Join(ew.Error(), ef.Close()); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("errors file: %w", err))
	}

	fmt.Fprintf(stdout, "%d rows: %d accepted, %d duplicate, %d rejected\n", stats.Rows, stats.Accepted, stats.Duplicate, stats.Rejected)
	if stats.Rejected > 0 {
		fmt.Fprintf(stderr, "import: rejected rows are listed in %s\n", *errorsPath)
	}
	if secs := elapsed.Seconds(); stats.Rows > 0 && secs > 0 {
		fmt.Fprintf(stderr, "import: %s in %s (%.0f rows/s)\n", path, elapsed.Round(time.Millisecond), float64(stats.Rows)/secs)
	}
	if stats.Accepted > 0 {
		// Our dedup remembers (event_name, event_id) for 48 h (spec §6.3:
		// Meta does not promise server-to-server dedup).
		fmt.Fprintln(stderr, "import: running this file again within 48 h sends nothing twice; after that, rows still within Meta's 7-day window would be sent again")
	}
	if runErr != nil {
		return fmt.Errorf("import %s: %w", path, runErr)
	}
	return nil
}

// importProgress shows a progress bar over the bytes read when stderr is a
// terminal, and otherwise a plain line at most every 5 seconds.
type importProgress struct {
	w    io.Writer
	bar  *progressbar.ProgressBar
	last time.Time
}

func newImportProgress(stderr io.Writer, size int64) *importProgress {
	p := &importProgress{w: stderr, last: time.Now()}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *importProgress) reader(r io.Reader) io.Reader {
	if p.bar == nil {
		return r
	}
	rd := progressbar.NewReader(r, p.bar)
	return &rd
}

func (p *importProgress) update(s offline.Stats) {
	line := fmt.Sprintf("%d rows: %d accepted, %d duplicate, %d rejected", s.Rows, s.Accepted, s.Duplicate, s.Rejected)
	if p.bar != nil {
		p.bar.Describe(line)
		return
	}
	if time.Since(p.last) >= 5*time.Second {
		p.last = time.Now()
		fmt.Fprintln(p.w, "import:", line)
	}
}

func (p *importProgress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
