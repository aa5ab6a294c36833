package app

import (
	"errors"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/sitecfg"
)

// TestCreateSiteFollowsTheSiteRules: the app's site creation (behind the
// dashboard's and the CLI's "add") used to keep "www.", take IP addresses,
// store non-ASCII domains raw and take pixel ids of any length.
func TestCreateSiteFollowsTheSiteRules(t *testing.T) {
	st, _, err := OpenStore(t.Context(), config.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, key, err := CreateSite(t.Context(), st, sitecfg.Update{Name: new(" Shop "), Domains: &[]string{"www.shop.example", "Bücher.de"},
		PixelID: new("123456"), AccessToken: new("EAAB-token")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Site(t.Context(), s.Key)
	if err != nil {
		t.Fatal(err)
	}
	if key == "" || got.Name != "Shop" || strings.Join(got.Domains, ",") != "shop.example,xn--bcher-kva.de" || !got.PartialLeads || got.AccessToken != "EAAB-token" {
		t.Errorf("created %+v", got)
	}
	for _, tc := range []struct {
		u     sitecfg.Update
		field string
	}{
		{sitecfg.Update{Name: new("IP"), Domains: &[]string{"127.0.0.1"}}, "domains"},
		{sitecfg.Update{Name: new("Short pixel"), Domains: &[]string{"a.example"}, PixelID: new("1234")}, "pixel_id"},
	} {
		var se *sitecfg.Error
		if _, _, err := CreateSite(t.Context(), st, tc.u); !errors.As(err, &se) || se.Field != tc.field {
			t.Errorf("CreateSite(%s) = %v, want an error on %s", *tc.u.Name, err, tc.field)
		}
	}
	if sites, _ := st.ListSites(t.Context()); len(sites) != 1 {
		t.Errorf("%d sites after refused creations, want 1", len(sites))
	}
}
