package collect

import (
	"strings"
	"testing"
)

// botCorpus is user agents of browsers, crawlers, monitors and libraries,
// and odd ones (case, spaces, non-ASCII).
var botCorpus = []string{
	testUA,
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
	"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android 12; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/460.0.0.38.108;FBBV/580000000]",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36",
	"curl/8.5.0", "python-requests/2.31", "CURL/7.1", "Wget/1.21", "java/17", " curl/8", "Java17",
	"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
	"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
	"Mozilla/5.0 (compatible; YandexBot/3.0)", "Mozilla/5.0 (compatible; AhrefsBot/7.0)", "Pingdom.com_bot_version_1.4",
	"Go-http-client/1.1", "okhttp/4.12.0", "axios/1.6.0", "node-fetch/1.0", "undici", "Apache-HttpClient/4.5", "Scrapy/2.11",
	"Mozilla/5.0 Chrome-Lighthouse", "Mozilla/5.0 (X11) WebDriver", "Mozilla/5.0 Robot;", "Mozilla/5.0 (Robot)",
	"", " ", "\t\r\n\v\f", "\u00a0", "\u00a0 \u2003", "x",
	"FACEBOO\u212AEXTERNALHIT/1.1", "faceboo\u212Aexternalhit", "\u0130A_ARCHIVER", "Mozilla/5.0 \u00e9 Googlebot/2.1",
	"Mozilla/5.0 (Linux; Android 13; \u5c0f\u7c73) Chrome/120", "Mozilla/5.0 \xff\xfe bot/1", "Mozilla/5.0 \xffSpider",
	"bo", "b", "bot", "bot/", "BOT)", "+HTTPS://", "crawle", "xcrawlerx", "Selenium", "PLAYWRIGHT", "puppeteer", "SemrushBot",
}

// TestIsBotAsDefined: IsBot answers as isBotSlow (lower case, then
// substrings) on the corpus and on every mark and prefix placed at the
// start, middle and end of a browser's user agent, in either case.
func TestIsBotAsDefined(t *testing.T) {
	t.Parallel()
	uas := append([]string(nil), botCorpus...)
	for _, m := range append(append([]string(nil), botMarks...), botPrefixes...) {
		for _, v := range []string{m, strings.ToUpper(m), m[:len(m)-1], strings.ToUpper(m[:1]) + m[1:]} {
			uas = append(uas, v, v+" "+testUA, testUA+v, testUA[:40]+v+testUA[40:], "x"+v)
		}
	}
	for _, ua := range uas {
		if got, want := IsBot(ua), isBotSlow(ua); got != want {
			t.Errorf("IsBot(%q) = %v, want %v", ua, got, want)
		}
	}
	for ua, want := range map[string]bool{
		testUA: false, botCorpus[6]: false, "": true, " ": true, "\u00a0": true, "curl/8.5.0": true, "CURL/7.1": true,
		" curl/8": false, "FACEBOO\u212AEXTERNALHIT/1.1": true, "Mozilla/5.0 (compatible; YandexBot/3.0)": true,
	} {
		if got := IsBot(ua); got != want {
			t.Errorf("IsBot(%q) = %v, want %v", ua, got, want)
		}
	}
}

// FuzzIsBot: IsBot answers as its definition, isBotSlow.
func FuzzIsBot(f *testing.F) {
	for _, ua := range botCorpus {
		f.Add(ua)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		if got, want := IsBot(ua), isBotSlow(ua); got != want {
			t.Fatalf("IsBot(%q) = %v, isBotSlow says %v", ua, got, want)
		}
	})
}
