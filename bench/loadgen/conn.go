package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// conn is one client's HTTP/1.1 keep-alive connection, written and read by
// hand the way wrk does: the relay shares the machine's CPUs with the load
// generator, so the generator must cost as little as it can. net/http's
// client spent about as much CPU per request as the relay's whole /e path.
type conn struct {
	addr       string
	c          net.Conn
	r          *bufio.Reader
	head       []byte    // request line and fixed headers, ending before Content-Length
	hdr        []byte    // this request's header block, reused
	deadlineAt time.Time // when the connection's deadline was last set
}

func newConn(rawURL string, headers [][2]string) (*conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var h bytes.Buffer
	fmt.Fprintf(&h, "POST %s HTTP/1.1\r\nHost: %s\r\n", u.RequestURI(), u.Host)
	for _, kv := range headers {
		fmt.Fprintf(&h, "%s: %s\r\n", kv[0], kv[1])
	}
	return &conn{addr: u.Host, head: h.Bytes()}, nil
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// post sends one request with extra headers (name: value\r\n lines) and
// reads the answer's status and body into resp.
func (c *conn) post(ctx context.Context, extra, body []byte, resp *bytes.Buffer) (int, error) {
	if c.c == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		nc, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return 0, err
		}
		c.c, c.r, c.deadlineAt = nc, bufio.NewReaderSize(nc, 16<<10), time.Time{}
	}
	// A deadline costs two timer updates: it is moved once a second, to
	// 30 s ahead (or the run's end), not for every request.
	if now := time.Now(); now.Sub(c.deadlineAt) >= time.Second {
		deadline := now.Add(30 * time.Second)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		c.c.SetDeadline(deadline)
		c.deadlineAt = now
	}
	// A small body is copied behind the header block and sent with one
	// write; a large one (80 KB for 100 events) goes out with the block in
	// one writev, uncopied.
	c.hdr = append(append(append(c.hdr[:0], c.head...), extra...), "Content-Length: "...)
	c.hdr = append(strconv.AppendInt(c.hdr, int64(len(body)), 10), "\r\n\r\n"...)
	var err error
	if len(body) <= 8<<10 {
		c.hdr = append(c.hdr, body...)
		_, err = c.c.Write(c.hdr)
	} else {
		bufs := net.Buffers{c.hdr, body}
		_, err = bufs.WriteTo(c.c)
	}
	if err != nil {
		c.close()
		return 0, cutOff(ctx, err)
	}
	code, keep, err := readResponse(c.r, resp)
	if err != nil || !keep {
		c.close()
	}
	return code, cutOff(ctx, err)
}

// cutOff reports an error past the run's deadline as the deadline: the
// request was cut off by the end of the run, it did not fail.
func cutOff(ctx context.Context, err error) error {
	if d, ok := ctx.Deadline(); err != nil && ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return err
}

// readResponse reads one HTTP/1.1 response: status, headers, and a body
// framed by Content-Length or chunked encoding.
func readResponse(r *bufio.Reader, body *bytes.Buffer) (code int, keepAlive bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.x NNN reason"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (len(line) > 12 && line[12] != ' ' && line[12] != '\r') {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, false, fmt.Errorf("bad status line %q", line)
		}
		code = code*10 + int(d-'0')
	}
	length, chunked, keepAlive := -1, false, true
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		h := bytes.TrimRight(line, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("bad header %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keepAlive = !bytes.EqualFold(value, []byte("close"))
		}
	}
	body.Reset()
	limited := func(n int64) error {
		if int64(body.Len())+n > 1<<20 {
			return errors.New("response body over 1 MiB")
		}
		_, err := io.CopyN(body, r, n)
		return err
	}
	switch {
	case code == 204 || code == 304 || code/100 == 1:
	case chunked:
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return 0, false, err
			}
			size, _, _ := strings.Cut(strings.TrimSpace(string(line)), ";")
			n, err := strconv.ParseInt(size, 16, 64)
			if err != nil {
				return 0, false, fmt.Errorf("bad chunk size %q", line)
			}
			if n == 0 {
				for { // trailers, then the empty line
					t, err := r.ReadSlice('\n')
					if err != nil {
						return 0, false, err
					}
					if len(bytes.TrimRight(t, "\r\n")) == 0 {
						break
					}
				}
				break
			}
			if err := limited(n); err != nil {
				return 0, false, err
			}
			if _, err := r.Discard(2); err != nil {
				return 0, false, err
			}
		}
	case length >= 0:
		if err := limited(int64(length)); err != nil {
			return 0, false, err
		}
	default: // read to close
		if _, err := io.Copy(body, io.LimitReader(r, 1<<20)); err != nil {
			return 0, false, err
		}
		keepAlive = false
	}
	return code, keepAlive, nil
}
