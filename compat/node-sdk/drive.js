// Drives Meta's official Node SDK (facebook-nodejs-business-sdk, pinned in
// package-lock.json) against capirelay's Graph-compatible endpoint, with
// the SDK's normal transport and only FacebookAdsApi.GRAPH pointed at the
// relay. Run by TestNodeSDK (cmd/capirelay/sdk_test.go):
//
//   node drive.js RELAY_URL PIXEL_ID API_KEY
//
// It prints one JSON line per scenario: its name, what the SDK sent (the
// request parameters and each event as EventRequest.execute serializes
// it, event.normalize()), and what came back (the EventResponse, or the
// FacebookRequestError's status and Graph error object).
'use strict';

const crypto = require('crypto');
const bizSdk = require('facebook-nodejs-business-sdk');

const [relayURL, pixelID, apiKey] = process.argv.slice(2);
if (!relayURL || !pixelID || !apiKey) {
  console.error('usage: node drive.js RELAY_URL PIXEL_ID API_KEY');
  process.exit(2);
}

const {
  FacebookAdsApi, EventRequest, ServerEvent, UserData, CustomData, Content, AppData, ExtendedDeviceInfo,
} = bizSdk;

// The one change a user makes: Graph's base URL.
Object.defineProperty(FacebookAdsApi, 'GRAPH', { get: () => relayURL });

const now = Math.floor(Date.now() / 1000);
const day = 24 * 3600;
const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');

// A different person each: the relay's identity stitching must have no
// one to join them to.
function websiteUser(i) {
  return new UserData()
    .setEmails([`buyer${i}@example.com`])
    .setPhones([`+1 650 556 ${String(1000 + i)}`])
    .setClientIpAddress('203.0.113.9')
    .setClientUserAgent('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36')
    .setFbp(`fb.1.1596403881668.${1100000000 + i}`)
    .setExternalIds([sha(`customer-${100 + i}`)]);
}

// Every user_data field the SDK has.
function everyField() {
  return new UserData()
    .setEmails(['Jane.Doe@Example.com', 'jane@example.org'])
    .setPhones(['+1 (650) 555-1212'])
    .setFirstNames(['Jane'])
    .setLastNames(['Doe'])
    .setDatesOfBirth(['19900216'])
    .setGenders(['f'])
    .setCities(['menlopark'])
    .setStates(['ca'])
    .setZips(['94025'])
    .setCountries(['us'])
    .setExternalIds([sha('customer-1')])
    .setClientIpAddress('2001:db8::1')
    .setClientUserAgent('Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15')
    .setFbc('fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk')
    .setFbp('fb.1.1596403881668.1116446470')
    .setSubscriptionId('sub-42')
    .setFbLoginId('1000001')
    .setLeadId('2000002')
    .setF5First('janed')
    .setF5Last('doe')
    .setFi('j')
    .setDobd('16')
    .setDobm('02')
    .setDoby('1990')
    .setMadid('38400000-8cf0-11bd-b23e-10b96e40000d')
    .setAnonId('anon-install-7')
    .setAppUserId('app-user-7')
    .setCtwaClid('ctwa-click-1')
    .setPageId('page-9');
}

function purchase(id, time, user, source = 'website') {
  const ev = new ServerEvent()
    .setEventName('Purchase')
    .setEventTime(time)
    .setEventId(id)
    .setUserData(user)
    .setCustomData(new CustomData().setValue(49.9).setCurrency('eur')
      .setContents([new Content().setId('sku-1').setQuantity(2).setItemPrice(24.95)])
      .setContentType('product').setOrderId(`order-${id}`))
    .setActionSource(source);
  if (source === 'website') {
    ev.setEventSourceUrl('https://shop.example.com/checkout/thanks');
  }
  return ev;
}

function appEvent() {
  const ext = new ExtendedDeviceInfo('i2', 'com.example.shop', '2.1', '2.1.0 (45)', '17.5', 'iPhone15,2',
    'en_US', 'PST', 'Carrier', 1179, 2556, '3.0', 6, 256, 100, 'America/Los_Angeles');
  const app = new AppData(true, true, null, null, ext);
  return new ServerEvent()
    .setEventName('AddToCart')
    .setEventTime(now - 120)
    .setEventId('app-1')
    .setActionSource('app')
    .setAdvertiserTrackingEnabled(true)
    .setAppData(app)
    .setUserData(new UserData().setMadid('38400000-8cf0-11bd-b23e-10b96e40000d').setAnonId('anon-install-7')
      .setClientIpAddress('203.0.113.10').setEmails(['app-user@example.com']))
    .setCustomData(new CustomData().setValue(12).setCurrency('USD'));
}

async function scenario(name, key, events, opts = {}) {
  const req = new EventRequest(key, pixelID, events, opts.partnerAgent || null, opts.testEventCode || null,
    opts.namespaceID || null, opts.uploadID || null, opts.uploadTag || null, opts.uploadSource || null,
    false, null, opts.appSecret || null);
  const sent = events.map((e) => e.normalize());
  const params = {
    partner_agent: opts.partnerAgent, test_event_code: opts.testEventCode, namespace_id: opts.namespaceID,
    upload_id: opts.uploadID, upload_tag: opts.uploadTag, upload_source: opts.uploadSource,
  };
  const out = { name, params, sent, bodyBytes: Buffer.byteLength(JSON.stringify({ data: sent, ...params })) };
  try {
    const resp = await req.execute();
    out.response = { events_received: resp.events_received, messages: resp.messages, fbtrace_id: resp.fbtrace_id };
  } catch (err) {
    out.error = {
      name: err.name,
      status: err.status,
      // FacebookRequestError.response is Graph's error object.
      graph: err.response && (err.response.error || err.response),
    };
  }
  await writeLine(JSON.stringify(out));
}

// writeLine resolves once the line is handed to the OS: stdout is a pipe
// under the Go test, writes to it are asynchronous, and process.exit drops
// whatever is still queued (a 300 KB line was cut short that way in CI).
function writeLine(s) {
  return new Promise((resolve, reject) => {
    process.stdout.write(s + '\n', (err) => (err ? reject(err) : resolve()));
  });
}

(async () => {
  await scenario('website purchase, every user_data field', apiKey, [purchase('web-1', now - 60, everyField())], {
    partnerAgent: 'acme-commerce-3.2', namespaceID: 'ns-17', uploadID: 'up-5', uploadTag: 'nightly',
    uploadSource: 'crm', appSecret: 'app-secret-for-proof',
  });
  await scenario('app event with AppData and ExtendedDeviceInfo', apiKey, [appEvent()]);
  await scenario('physical_store sale 20 days old', apiKey,
    [purchase('store-1', now - 20 * day, websiteUser(0), 'physical_store')]);
  const batch = [];
  for (let i = 0; i < 1000; i++) {
    batch.push(purchase(`batch-${i}`, now - 300, websiteUser(i)));
  }
  await scenario('batch of 1000', apiKey, batch);
  await scenario('test event code', apiKey, [purchase('test-1', now - 30, websiteUser(1))], { testEventCode: 'TEST4242' });
  await scenario('wrong key', 'crk_not-a-key', [purchase('wrong-1', now - 30, websiteUser(2))]);
  await scenario('stale website event', apiKey, [purchase('stale-1', now - 10 * day, websiteUser(3))]);
  process.exit(0);
})().catch((err) => {
  console.error(err && err.stack || err);
  process.exit(1);
});
