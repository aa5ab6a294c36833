package collect

import (
	"net/http"
	"strings"
	"testing"
)

// TestBrowserCustomDataScrubbed: a page's capirelay('track', …) data is
// custom_data; an email address or a card number in it never reaches the
// outbox, the rest does.
func TestBrowserCustomDataScrubbed(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	body := `{"vid":"abcdefghijklmnopq","events":[{"type":"event","name":"Signup","id":"s-1","url":"https://www.example.co.uk/","data":{"plan":"pro","email":"ada@example.com","ref":"4111111111111111","friend":{"Mobile":"020 7946 0958"}}}]}`
	if res := bb.do(t, req{body: body}); res.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", res.StatusCode)
	}
	items := bb.items(t)
	if len(items) != 1 {
		t.Fatalf("items = %+v", items)
	}
	cd, _ := payload(t, items[0])["custom_data"].(map[string]any)
	if len(cd) != 2 || cd["plan"] != "pro" || len(cd["friend"].(map[string]any)) != 0 {
		t.Errorf("custom_data = %v, want only the plan and an empty friend", cd)
	}
	if p := string(items[0].Payload); strings.Contains(p, "ada@") || strings.Contains(p, "4111") || strings.Contains(p, "7946") {
		t.Errorf("personal data in the outbox payload: %s", p)
	}
}
