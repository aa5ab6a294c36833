package identity_test

import (
	"slices"
	"testing"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/identity"
	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/store"
)

// stores runs test on SQLite and on PostgreSQL (skipped without a server,
// except in CI).
func stores(t *testing.T, test func(t *testing.T, b *bundle)) {
	for _, s := range []struct {
		name  string
		setup func(*testing.T) *bundle
	}{{"sqlite", setup}, {"postgres", setupPostgres}} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			test(t, s.setup(t))
		})
	}
}

// TestEmailOnlyEventsLink is the report: a server event with em and fbp,
// then one with only em (another spelling of it), was not enriched: only
// an external_id or a visitor made a record. An email links as the
// others do.
func TestEmailOnlyEventsLink(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, b *bundle) {
		in := serverEvent(event.UserData{Em: event.List{rawEmail}, Fbp: fbp, Fbc: fbc, Ph: event.List{rawPhone},
			ClientIPAddress: "203.0.113.7", ClientUserAgent: ua})
		in.Event.ActionSource, in.Event.EventSourceURL = "website", "https://shop.example/"
		b.submit(t, in)
		got := b.submit(t, serverEvent(event.UserData{Em: event.List{"  jane.doe@example.COM "}}))
		if got.Fbp != fbp || got.Fbc != fbc {
			t.Errorf("fbp/fbc = %q/%q, want the first event's", got.Fbp, got.Fbc)
		}
		if !slices.Equal(got.Ph, []string{hash(t, normalize.Phone, rawPhone)}) {
			t.Errorf("ph = %v, want the learned hash", got.Ph)
		}
		if got.ClientIPAddress != "" || got.ClientUserAgent != "" {
			t.Errorf("ip/ua = %q/%q on a system_generated event, want none", got.ClientIPAddress, got.ClientUserAgent)
		}
		// A website event of the same email gets the address too.
		in = serverEvent(event.UserData{Em: event.List{rawEmail}, ClientUserAgent: "Other/1.0"})
		in.Event.ActionSource, in.Event.EventSourceURL = "website", "https://shop.example/thanks"
		if got := b.submit(t, in); got.ClientIPAddress != "203.0.113.7" || got.ClientUserAgent != "Other/1.0" {
			t.Errorf("website event: ip/ua = %q/%q, want the first event's address and its own agent",
				got.ClientIPAddress, got.ClientUserAgent)
		}
		// An external_id named later joins the email's record.
		b.submit(t, serverEvent(event.UserData{Em: event.List{rawEmail}, ExternalID: event.List{"cust-42"}}))
		if got := b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-42"}})); got.Fbp != fbp ||
			!slices.Equal(got.Em, []string{hash(t, normalize.Email, rawEmail)}) {
			t.Errorf("by external_id: user_data = %+v, want the email's record", got)
		}
		// A phone alone still links nothing; another email is someone else.
		wantBare(t, b.submit(t, serverEvent(event.UserData{Ph: event.List{rawPhone}})))
		if got := b.submit(t, serverEvent(event.UserData{Em: event.List{"someone@else.example"}})); got.Fbp != "" || len(got.Ph) != 0 {
			t.Errorf("stranger: user_data = %+v, want nothing added", got)
		}
		wantAmbiguous(t, b.reg, 0)
	})
}

// TestEmailRecordYieldsToBrowser: a person known first by email from
// server events, then from a browser naming that email, is one person:
// the browser's record, not an ambiguity.
func TestEmailRecordYieldsToBrowser(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, b *bundle) {
		b.submit(t, serverEvent(event.UserData{Em: event.List{rawEmail}, Fbp: "fb.1.1700000000000.777", Ln: event.List{"Doe"}}))
		b.browserEvent(t)
		got := b.submit(t, serverEvent(event.UserData{Em: event.List{rawEmail}}))
		if got.Fbp != fbp || !slices.Equal(got.ExternalID, []string{hash(t, normalize.ExternalID, "cust-42")}) {
			t.Errorf("user_data = %+v, want the browser's record", got)
		}
		wantAmbiguous(t, b.reg, 0)
	})
}

// TestEmailRecordThenExternalID: an email's record, then another record
// by external_id: an event naming both finds what it found before there
// were email records (the external_id's); an email's record that holds
// another external_id is someone else's, and the event gets nothing.
func TestEmailRecordThenExternalID(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, b *bundle) {
		b.submit(t, serverEvent(event.UserData{Em: event.List{rawEmail}, Fbp: "fb.1.1700000000000.777"}))
		b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-42"}, Ln: event.List{"Doe"}}))
		got := b.submit(t, serverEvent(event.UserData{Em: event.List{rawEmail}, ExternalID: event.List{"cust-42"}}))
		if !slices.Equal(got.Ln, []string{hash(t, normalize.LastName, "Doe")}) {
			t.Errorf("ln = %v, want the external_id's record's", got.Ln)
		}
		wantAmbiguous(t, b.reg, 0)

		// Ann's email record learns her customer id; Bob's record is by
		// another: an event with Ann's email and Bob's id gets nothing.
		b.submit(t, serverEvent(event.UserData{Em: event.List{"ann@example.com"}, Fbp: "fb.1.1700000000000.111"}))
		b.submit(t, serverEvent(event.UserData{Em: event.List{"ann@example.com"}, ExternalID: event.List{"cust-ann"}}))
		b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-bob"}, Fbp: "fb.1.1700000000000.222", Ln: event.List{"Bobson"}}))
		got = b.submit(t, serverEvent(event.UserData{Em: event.List{"ann@example.com"}, ExternalID: event.List{"cust-bob"}}))
		if got.Fbp != "" || len(got.Ln) != 0 {
			t.Errorf("user_data = %+v, want nothing added from Ann's or Bob's record", got)
		}
		wantAmbiguous(t, b.reg, 1)
		if got := b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-ann"}})); got.Fbp != "fb.1.1700000000000.111" {
			t.Errorf("Ann by customer id: fbp = %q, want hers", got.Fbp)
		}
	})
}

// TestTwoEmailRecordsAddNothing: an event naming two emails, each with
// its own record, points at two people.
func TestTwoEmailRecordsAddNothing(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, b *bundle) {
		b.submit(t, serverEvent(event.UserData{Em: event.List{"ann@example.com"}, Fbp: "fb.1.1700000000000.111"}))
		b.submit(t, serverEvent(event.UserData{Em: event.List{"bob@example.com"}, Fbp: "fb.1.1700000000000.222"}))
		got := b.submit(t, serverEvent(event.UserData{Em: event.List{"ann@example.com", "bob@example.com"}}))
		if got.Fbp != "" {
			t.Errorf("fbp = %q, want none", got.Fbp)
		}
		wantAmbiguous(t, b.reg, 1)
	})
}

// TestEmailOnlyVisitorMode: with identity visitor, a server event without
// a visitor teaches nothing, with or without an email.
func TestEmailOnlyVisitorMode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.site.Identity = store.IdentityVisitor
	b.submit(t, serverEvent(event.UserData{Em: event.List{rawEmail}, Fbp: fbp, Ph: event.List{rawPhone}}))
	b.site.Identity = store.IdentityFull
	if got := b.submit(t, serverEvent(event.UserData{Em: event.List{rawEmail}})); got.Fbp != "" || len(got.Ph) != 0 {
		t.Errorf("user_data = %+v, want nothing added", got)
	}
}

// TestForgetEmailRecord: forgetting an email erases the record it named.
func TestForgetEmailRecord(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, b *bundle) {
		emHash := hash(t, normalize.Email, rawEmail)
		b.submit(t, serverEvent(event.UserData{Em: event.List{rawEmail}, Ph: event.List{rawPhone}, Fbp: fbp}))
		if _, err := b.st.Identity(t.Context(), "shop", identity.EmailPrefix+emHash); err != nil {
			t.Fatalf("the email's record: %v", err)
		}
		res, err := b.st.Forget(t.Context(), store.ForgetRequest{Hashes: []string{emHash}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Identities != 1 {
			t.Errorf("Forget = %+v, want the email's record erased", res)
		}
		if vs, err := b.st.VisitorsByHash(t.Context(), "shop", store.KeyEmail, emHash); err != nil || len(vs) != 0 {
			t.Errorf("VisitorsByHash(em) = %v, %v after forget, want none", vs, err)
		}
	})
}
