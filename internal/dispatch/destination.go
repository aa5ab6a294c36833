package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/store"
)

// Meta delivers to the Graph API with the site's pixel id and token.
type Meta struct {
	Client       *capi.Client
	PartnerAgent string // e.g. "capirelay-1.0.0"
}

// Send posts the batch.
func (m *Meta) Send(ctx context.Context, site *store.Site, b *Batch) (*capi.Response, error) {
	return m.Client.Send(ctx, site.PixelID, capi.ParseRequestParams(b.Params).With(&capi.Request{
		Data: b.Events, AccessToken: site.AccessToken, TestEventCode: b.TestEventCode, PartnerAgent: m.PartnerAgent,
	}))
}

// SandboxRecorder keeps sandbox payloads.
type SandboxRecorder interface {
	RecordSandbox(ctx context.Context, siteKey string, at time.Time, payload []byte) error
}

// Sandbox validates a batch exactly as the Graph API would (one bad event
// rejects the whole request with code 100) and records the payload Meta
// would have received, so a site works end to end without a Meta account.
type Sandbox struct {
	Store        SandboxRecorder
	PartnerAgent string
	Now          func() time.Time
}

// Send validates and records the batch.
func (s *Sandbox) Send(ctx context.Context, site *store.Site, b *Batch) (*capi.Response, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	for i, ev := range b.Events {
		if probs := capi.ValidateEvent(ev, t); len(probs) > 0 {
			// As Graph: one bad event refuses the request (§7.2).
			e := probs[0].Refusal(i)
			e.TraceID = "sandbox"
			return nil, e
		}
	}
	body, err := json.Marshal(capi.ParseRequestParams(b.Params).With(&capi.Request{Data: b.Events, TestEventCode: b.TestEventCode, PartnerAgent: s.PartnerAgent}))
	if err != nil {
		return nil, err
	}
	if err := s.Store.RecordSandbox(ctx, site.Key, t, bytes.TrimSpace(body)); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return &capi.Response{EventsReceived: len(b.Events), FbtraceID: "sandbox"}, nil
}
