/* capirelay tag (internal/tag/t.js), the readable source: t.min.js, its esbuild-minified form, is what is served (go test ./internal/tag -run TestMinified -update rebuilds it); never throws into the page */
((w,d,n)=>{
let cfg=__CAPIRELAY_CFG__,loc=w.location,hist=w.history,prior=w.capirelay
if(prior&&prior.v)return
let safe=f=>function(){try{return f.apply(this,arguments)}catch(e){}}
safe(()=>{
let src=new URL(d.currentScript.src),siteKey=src.searchParams.get('site')
if(!siteKey)return
let endpoint=new URL('e?site='+encodeURIComponent(siteKey),src).href,
STANDARD=/^(PageView|ViewContent|Search|AddTo(Cart|Wishlist)|InitiateCheckout|AddPaymentInfo|Purchase|Lead|CompleteRegistration|Contact|CustomizeProduct|Donate|FindLocation|Schedule|StartTrial|SubmitApplication|Subscribe)$/,
// field kinds: the first match on "type name id placeholder aria-label label autocomplete" wins
KINDS=[['em',/mail|courriel|correo/],['ph',/tel|phone|mobil|cell|handy|portable/],['fn',/first|given|vorname|pr[eé]nom|nombre/],
['ln',/last|surname|family|nachname|apellido|\bnom\b/],['db',/birth|bday|dob|geburt|naissance|nacimiento/],['zp',/zip|postal|plz/],
['ct',/city|level2|town|stadt|ville|ciudad/],['st',/state|level1|province|region|bundesland/],['country',/country|\bland\b|pays|pa[ií]s/],['nm',/name/]],
// never captured: these types, secrets, non-personal fields
NEVER=/^(hidden|checkbox|radio|submit|button|file)\b|one-time|passw|ssn|account|secur|\bpin\b|token|username|login|company|search|coupon|promo/,
// payment fields (a form with one is never captured): card, CVC, expiry, IBAN in the tag's languages;
// cc_number, cc_exp, exp_month (not a recruiter's exp_years), a security code that is no captcha
// ([^] spans a label's line breaks), a card number placeholder (1234 1234 1234 1234)
PAYMENT=/cc-|(\b|_)(cc[_\s]?(num|no\b|exp|name|type)|exp[\W_]{0,2}(date|month|year(?!s)|mm|yy))|card|cv[vc]|csc|iban|kart|tarjeta|carte\b|expir|^(?![^]*captcha)[^]*security.?code|(\d{4}[\s-]){3}\d|ablauf|caducidad|vencim|pr[uü]fn|cryptogram/,
// Meta's advanced-matching names for identify
META_NAMES={email:'em',phone:'ph',first_name:'fn',last_name:'ln',date_of_birth:'db',gender:'ge',city:'ct',state:'st',zip:'zp'}
let consentState=readCookie('_cr_consent'),cookieDomain='',domainIndex=0,visitorID='',browserID='',clickCookie='',identity={},forms={},queue=[],timer=0,lastURL=loc.href
// a card number: 13-19 digits (spaces, dashes) passing Luhn; never sent
function looksLikeCard(v){v=v.replace(/[\s-]/g,'');let s=0,i=v.length,a=2
while(i--)s+=(a^=3)*v[i]%9||+v[i]&&9
return/^\d{13,19}$/.test(v)&&s%10==0}
// k random 32-bit numbers as decimal digits (ids)
function randomDigits(k){return crypto.getRandomValues(new Uint32Array(k)).join('')}
function readCookie(k){let m=d.cookie.match('(?:^|; *)'+k+'=([^;]*)');return m?m[1]:''}
function writeCookie(k,v,age,dm){d.cookie=k+'='+v+';Max-Age='+age+';Path=/'+(dm?';Domain='+dm:'')+';SameSite=Lax'+(loc.protocol=='https:'?';Secure':'')}
let allowed=()=>consentState=='granted'||consentState!='denied'&&cfg.consent!='required'
// registrable domain = the shortest suffix that keeps a cookie (browsers refuse public suffixes); IPs and localhost: host-only
function findCookieDomain(){let h=loc.hostname,p=h.split('.')
if(/^[\d.]+$|:/.test(h)||p.length<2)return
domainIndex=p.length-1
for(let i=2;i<=p.length;i++){let c=p.slice(-i).join('.'),t=randomDigits(1);writeCookie('_cr_t',t,9,c);if(readCookie('_cr_t')==t){writeCookie('_cr_t','',0,c);cookieDomain=c;domainIndex=i-1;return}}}
// as fbcookie.Parse: 4 or 5 segments, the 5th a known appendix (spec §5.4 step 4)
function validFbCookie(v){let m=/^fb\.\d+\.\d+\.[^.]+(?:\.([\w-]+))?$/.exec(v),a=m&&m[1]
if(!m)return 0
if(!a||/^(A[Qgw]|B[AQg])$/.test(a))return 1
let b=a.length==8&&atob(a.replace(/-/g,'+').replace(/_/g,'/'))
return b&&/^\x01[\x01-\x06]/.test(b)}
function clickIDOf(u){let v=new URL(u||loc.href,loc.href).searchParams.get('fbclid');return v&&/^[!#-+\-\/-:<-\[\]-~]{1,500}$/.test(v)?v:''}
// denied: every copy of the ids goes, on the registrable domain and host-only
function forget(){cookieDomain||findCookieDomain();for(let k of['_fbp','_fbc','_cr_vid'])writeCookie(k,'',0,cookieDomain),writeCookie(k,'',0)}
// a page that starts denied clears them too: an answer to an event sent
// before the denial may have set the relay's copies again after it
function init(){if(!allowed())return consentState=='denied'&&forget(),visitorID=visitorID||randomDigits(4)
findCookieDomain()
let v=readCookie('_cr_vid'),o
let id=clickIDOf()||clickIDOf(d.referrer),pre='fb.'+domainIndex+'.'+Date.now()+'.'
visitorID=/^[\w-]{16,64}$/.test(v)?v:visitorID||randomDigits(4)
writeCookie('_cr_vid',visitorID,31536e3,cookieDomain)
v=readCookie('_fbp')
browserID=validFbCookie(v)?v:pre+(1e9+Math.floor(randomDigits(1)/2**32*1147483647))
writeCookie('_fbp',browserID,7776e3,cookieDomain)
v=readCookie('_fbc');o=validFbCookie(v)&&v.split('.')[3]
clickCookie=id&&id!=o?pre+id:o?v:''
if(clickCookie)writeCookie('_fbc',clickCookie,7776e3,cookieDomain)}
// sendBeacon (text/plain: no preflight), else fetch keepalive; one retry
function post(b,r){if(!r&&n.sendBeacon&&n.sendBeacon(endpoint,b))return
let a=()=>r||setTimeout(safe(()=>post(b,1)),1e3)
fetch(endpoint,{method:'POST',body:b,keepalive:b.length<6e4,credentials:'include'}).then(x=>x.status>499||x.status==429?a():0,a)}
function flush(){timer=0
if(queue.length)post(JSON.stringify({v:1,vid:visitorID,fbp:browserID,fbc:clickCookie,consent:consentState,lang:n.language,events:queue}))
queue=[]}
function push(e){if(consentState=='denied'&&e.type!='consent')return
e.url=loc.href;queue.push(e);timer=timer||setTimeout(safe(flush))}
// a form's erased field ('') does not hide identify's value
function track(name,data,opt,x,ref){let id=''+(opt&&opt.eventID||randomDigits(4)),e={type:'event',name:String(name),id,ref},u={...x&&x.user}
for(let k in identity)u[k]=u[k]||identity[k]
if(data&&typeof data=='object')e.data=data
if(x){e.form=x.form;e.submit=!0}
if(Object.keys(u).length)e.user=u
push(e)
// dual mode: the Pixel gets the same event with the same eventID, so Meta dedups
if(w.fbq&&allowed())safe(w.fbq)(STANDARD.test(e.name)?'track':'trackCustom',e.name,data||{},{eventID:id})
return id}
// dual mode: the Pixel follows the visitor's decision (the README has it start revoked)
function mirrorConsent(s){w.fbq&&safe(w.fbq)('consent',s=='granted'?'grant':'revoke')}
function decide(s){s=s=='granted'?s:'denied'
if(s==consentState)return
let prev=visitorID
consentState=s;cookieDomain||findCookieDomain();writeCookie('_cr_consent',s,31536e3,cookieDomain)
mirrorConsent(s)
if(allowed())init()
else{browserID=clickCookie='';forms={};forget()}
push({type:'consent',state:s,prev})}
function api(c,a,b,x){if(c=='track')return track(a,b,x)
if(c=='identify')for(let k in a){let v=a[k],j=META_NAMES[k]||k
if(/^(em|ph|fn|ln|db|ge|ct|st|zp|country|external_id)$/.test(j)&&v!=null&&!looksLikeCard(v+=''))identity[j]=v}
if(c=='consent')decide(a)}
let describe=el=>[el.type,el.name,el.id,el.placeholder,el.ariaLabel,el.labels?.[0]?.textContent,el.autocomplete].join(' ').toLowerCase()
// a form with a payment field
let hasPaymentField=f=>f&&[...f.elements].some(el=>PAYMENT.test(describe(el)))
function fieldKind(el){if(!el||!el.labels||el.closest('[data-capirelay-ignore]')||!el.getClientRects().length||hasPaymentField(el.form))return
let s=describe(el),r=!NEVER.test(s)&&!PAYMENT.test(s)&&KINDS.find(r=>r[1].test(s))
return r&&r[0]}
let formID=f=>f?(f.getAttribute('id')||f.getAttribute('name')||f.getAttribute('action')||'form'+[].indexOf.call(d.forms,f)).slice(0,100):'_'
let fieldValue=el=>(el.value||'').trim().slice(0,500)
// a full name is split: first word fn, the rest ln; a blank (or card-like) value
// erases only what the same field put there, as '' so the relay erases it too
// (a capture carries only this page's fields: a key it lacks is kept there, and
// a blank field the visitor never typed in erases nothing)
function putField(o,k,v,el){if(k=='nm'){v=v.split(/\s+/);putField(o,'fn',v.shift(),el);k='ln';v=v.join(' ')}
if(v&&!looksLikeCard(v))o[k]=el['_cr'+k]=v;else if(el['_cr'+k]&&o[k]==el['_cr'+k])o[k]=''}
function captureField(el){let k=allowed()&&fieldKind(el)
if(!k)return
let id=formID(el.form),o=forms[id]=forms[id]||{},was=JSON.stringify(o)
putField(o,k,fieldValue(el),el)
if(JSON.stringify(o)!=was)push({type:'capture',form:id,fields:{...o}})}
let listen=(t,f)=>d.addEventListener(t,safe(f),true)
listen('change',e=>captureField(e.target))
listen('blur',e=>captureField(e.target))
listen('input',e=>{let el=e.target;clearTimeout(el.__cr);el.__cr=setTimeout(safe(()=>captureField(el)),800)})
// a submit is a Lead when the form asks for an email or phone, has no password,
// is no search and no payment form, and the page did not cancel the submit;
// data-capirelay-event="Name" always counts, under its own name
function submitted(f,e){let n=f.dataset.capirelayEvent,id=formID(f),o=forms[id]=forms[id]||{},A=[...f.elements],T=Date.now()
if(f.closest('[data-capirelay-ignore]')||f._crt>T-3e3)return
if(allowed())for(let el of A){let k=fieldKind(el);if(k)putField(o,k,fieldValue(el),el)}
let go=()=>{if(n||!(e&&e.defaultPrevented)&&!hasPaymentField(f)&&!f.closest('[role=search]')&&A.some(el=>/^(email|tel)$/.test(el.type)||/^(em|ph)$/.test(fieldKind(el)))&&!A.some(el=>/^(password|search)$/.test(el.type))){f._crt=T
track(n||'Lead',0,0,{form:id,user:o});flush()}}
e?setTimeout(safe(go)):go()}
listen('submit',e=>submitted(e.target,e))
// form.submit() fires no submit event
let formProto=HTMLFormElement.prototype,nativeSubmit=formProto.submit
formProto.submit=function(){safe(submitted)(this);return nativeSubmit.apply(this,arguments)}
w.addEventListener('pagehide',safe(flush))
// single-page apps: a PageView when the path or query changes (not the hash, not a
// replaceState that only drops query parameters, e.g. fbclid)
function navigated(rs){let r=lastURL,a=new URL(r),b=new URL(loc.href),q=x=>x.pathname+x.search
lastURL=loc.href
if(q(a)!=q(b)&&!(rs&&a.pathname==b.pathname&&[...b.searchParams].every(([k,v])=>a.searchParams.get(k)==v)))track('PageView',0,0,0,r)}
for(let k of['pushState','replaceState']){let f=hist[k];hist[k]=function(){let r=f.apply(this,arguments);safe(navigated)(k>'q');return r}}
w.addEventListener('popstate',safe(()=>navigated()))
consentState&&mirrorConsent(consentState)
init()
let q=prior&&prior.q||[],A=safe(api)
A.v=1
w.capirelay=A
for(let c of q)if(c[0]!='track')A(...c)
track('PageView',0,0,0,d.referrer)
for(let c of q)if(c[0]=='track')A(...c)
})()
})(window,document,navigator)
