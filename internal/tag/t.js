/* capirelay tag (internal/tag/t.js), the readable source: t.min.js, its esbuild-minified form, is what is served (go test ./internal/tag -run TestMinified -update rebuilds it); never throws into the page */
((w,d,n)=>{
let C=__CAPIRELAY_CFG__,L=w.location,H=w.history,O=w.capirelay
if(O&&O.v)return
let g=f=>function(){try{return f.apply(this,arguments)}catch(e){}}
g(()=>{
let U=new URL(d.currentScript.src),S=U.searchParams.get('site')
if(!S)return
let E=new URL('e?site='+encodeURIComponent(S),U).href,
STD=/^(PageView|ViewContent|Search|AddTo(Cart|Wishlist)|InitiateCheckout|AddPaymentInfo|Purchase|Lead|CompleteRegistration|Contact|CustomizeProduct|Donate|FindLocation|Schedule|StartTrial|SubmitApplication|Subscribe)$/,
// field kinds: the first match on "type name id placeholder aria-label label autocomplete" wins
RX=[['em',/mail|courriel|correo/],['ph',/tel|phone|mobil|cell|handy|portable/],['fn',/first|given|vorname|pr[eé]nom|nombre/],
['ln',/last|surname|family|nachname|apellido|\bnom\b/],['db',/birth|bday|dob|geburt|naissance|nacimiento/],['zp',/zip|postal|plz/],
['ct',/city|level2|town|stadt|ville|ciudad/],['st',/state|level1|province|region|bundesland/],['country',/country|\bland\b|pays|pa[ií]s/],['nm',/name/]],
// never captured: these types, secrets, non-personal fields
NO=/^(hidden|checkbox|radio|submit|button|file)\b|one-time|passw|ssn|account|secur|\bpin\b|token|username|login|company|search|coupon|promo/,
// payment fields (a form with one is never captured): card, CVC, expiry, IBAN in the tag's languages
PAY=/cc-|card|cv[vc]|csc|iban|kart|tarjeta|carte\b|ccnum|expir|ablauf|caducidad|vencim|pr[uü]fn|cryptogram/,
// Meta's advanced-matching names for identify
MN={email:'em',phone:'ph',first_name:'fn',last_name:'ln',date_of_birth:'db',gender:'ge',city:'ct',state:'st',zip:'zp'}
let CON=rc('_cr_consent'),DOM='',IX=0,VID='',FBP='',FBC='',ID={},F={},Q=[],TM=0,LAST=L.href
// k random 32-bit numbers as decimal digits (ids)
// a card number: 13-19 digits (spaces, dashes) passing Luhn; never sent
function cc(v){v=v.replace(/[\s-]/g,'');let s=0,i=v.length,a=2
if(!/^\d{13,19}$/.test(v))return
while(i--)s+=(a^=3)*v[i]%9||+v[i]&&9
return s%10==0}
function rnd(k){return crypto.getRandomValues(new Uint32Array(k)).join('')}
function rc(k){let m=d.cookie.match('(?:^|; *)'+k+'=([^;]*)');return m?m[1]:''}
function wc(k,v,age,dm){d.cookie=k+'='+v+';Max-Age='+age+';Path=/'+(dm?';Domain='+dm:'')+';SameSite=Lax'+(L.protocol=='https:'?';Secure':'')}
let ok=()=>CON=='granted'||CON!='denied'&&C.consent!='required'
// registrable domain = the shortest suffix that keeps a cookie (browsers refuse public suffixes); IPs and localhost: host-only
function dom(){let h=L.hostname,p=h.split('.')
if(/^[\d.]+$|:/.test(h)||p.length<2)return
IX=p.length-1
for(let i=2;i<=p.length;i++){let c=p.slice(-i).join('.'),t=rnd(1);wc('_cr_t',t,9,c);if(rc('_cr_t')==t){wc('_cr_t','',0,c);DOM=c;IX=i-1;return}}}
// as fbcookie.Parse: 4 or 5 segments, the 5th a known appendix (spec §5.4 step 4)
function valid(v){let m=/^fb\.\d+\.\d+\.[^.]+(?:\.([\w-]+))?$/.exec(v),a=m&&m[1]
if(!m)return 0
if(!a||/^(A[Qgw]|B[AQg])$/.test(a))return 1
let b=a.length==8&&atob(a.replace(/-/g,'+').replace(/_/g,'/'))
return b&&/^\x01[\x01-\x06]/.test(b)}
function clk(u){let v=new URL(u||L.href,L.href).searchParams.get('fbclid');return v&&/^[!#-+\-\/-:<-\[\]-~]{1,500}$/.test(v)?v:''}
function init(){if(!ok())return VID=VID||rnd(4)
dom()
let v=rc('_cr_vid'),o
let id=clk()||clk(d.referrer),pre='fb.'+IX+'.'+Date.now()+'.'
VID=/^[\w-]{16,64}$/.test(v)?v:VID||rnd(4)
wc('_cr_vid',VID,31536e3,DOM)
v=rc('_fbp')
FBP=valid(v)?v:pre+(1e9+Math.floor(rnd(1)/2**32*1147483647))
wc('_fbp',FBP,7776e3,DOM)
v=rc('_fbc');o=valid(v)&&v.split('.')[3]
FBC=id&&id!=o?pre+id:o?v:''
if(FBC)wc('_fbc',FBC,7776e3,DOM)}
// sendBeacon (text/plain: no preflight), else fetch keepalive; one retry
function post(b,r){if(!r&&n.sendBeacon&&n.sendBeacon(E,b))return
let a=()=>r||setTimeout(g(()=>post(b,1)),1e3)
fetch(E,{method:'POST',body:b,keepalive:b.length<6e4,credentials:'include'}).then(x=>x.status>499||x.status==429?a():0,a)}
function flush(){TM=0
if(Q.length)post(JSON.stringify({v:1,vid:VID,fbp:FBP,fbc:FBC,consent:CON,lang:n.language,events:Q}))
Q=[]}
function push(e){if(CON=='denied'&&e.type!='consent')return
e.url=L.href;Q.push(e);TM=TM||setTimeout(g(flush))}
function track(name,data,opt,x,ref){let id=''+(opt&&opt.eventID||rnd(4)),e={type:'event',name:String(name),id,ref},u={...ID,...x&&x.user}
if(data&&typeof data=='object')e.data=data
if(x){e.form=x.form;e.submit=!0}
if(Object.keys(u).length)e.user=u
push(e)
// dual mode: the Pixel gets the same event with the same eventID, so Meta dedups
if(w.fbq&&ok())g(w.fbq)(STD.test(e.name)?'track':'trackCustom',e.name,data||{},{eventID:id})
return id}
// dual mode: the Pixel follows the visitor's decision (the README has it start revoked)
function fbc(s){w.fbq&&g(w.fbq)('consent',s=='granted'?'grant':'revoke')}
function consent(s){s=s=='granted'?s:'denied'
if(s==CON)return
let prev=VID
CON=s;DOM||dom();wc('_cr_consent',s,31536e3,DOM)
fbc(s)
if(ok())init()
// denied: every copy goes, on the registrable domain and host-only
else{FBP=FBC='';F={};for(let k of['_fbp','_fbc','_cr_vid'])wc(k,'',0,DOM),wc(k,'',0)}
push({type:'consent',state:s,prev})}
function api(c,a,b,x){if(c=='track')return track(a,b,x)
if(c=='identify')for(let k in a){let v=a[k],j=MN[k]||k
if(/^(em|ph|fn|ln|db|ge|ct|st|zp|country|external_id)$/.test(j)&&v!=null&&!cc(v+=''))ID[j]=v}
if(c=='consent')consent(a)}
let desc=el=>[el.type,el.name,el.id,el.placeholder,el.ariaLabel,el.labels?.[0]?.textContent,el.autocomplete].join(' ').toLowerCase()
// a form with a payment field
let pay=f=>f&&[...f.elements].some(el=>PAY.test(desc(el)))
function kind(el){if(!el||!el.labels||el.closest('[data-capirelay-ignore]')||!el.getClientRects().length||pay(el.form))return
let s=desc(el),r=!NO.test(s)&&!PAY.test(s)&&RX.find(r=>r[1].test(s))
return r&&r[0]}
let fid=f=>f?(f.getAttribute('id')||f.getAttribute('name')||f.getAttribute('action')||'form'+[].indexOf.call(d.forms,f)).slice(0,100):'_'
let val=el=>(el.value||'').trim().slice(0,500)
// a full name is split: first word fn, the rest ln; a blank (or card-like) value
// erases only what the same field put there
function put(o,k,v,el){if(k=='nm'){v=v.split(/\s+/);put(o,'fn',v.shift(),el);k='ln';v=v.join(' ')}
if(v&&!cc(v))o[k]=el['_cr'+k]=v;else if(o[k]==el['_cr'+k])delete o[k]}
function cap(el){let k=ok()&&kind(el)
if(!k)return
let id=fid(el.form),o=F[id]=F[id]||{},was=JSON.stringify(o)
put(o,k,val(el),el)
if(JSON.stringify(o)!=was)push({type:'capture',form:id,fields:{...o}})}
let on=(t,f)=>d.addEventListener(t,g(f),true)
on('change',e=>cap(e.target))
on('blur',e=>cap(e.target))
on('input',e=>{let el=e.target;clearTimeout(el.__cr);el.__cr=setTimeout(g(()=>cap(el)),800)})
// a submit is a Lead when the form asks for an email or phone, has no password,
// is no search and no payment form, and the page did not cancel the submit;
// data-capirelay-event="Name" always counts, under its own name
function sub(f,e){let n=f.dataset.capirelayEvent,id=fid(f),o=F[id]=F[id]||{},A=[...f.elements],T=Date.now()
if(f.closest('[data-capirelay-ignore]')||f._crt>T-3e3)return
if(ok())for(let el of A){let k=kind(el);if(k)put(o,k,val(el),el)}
let go=()=>{if(n||!(e&&e.defaultPrevented)&&!pay(f)&&!f.closest('[role=search]')&&A.some(el=>/^(email|tel)$/.test(el.type)||/^(em|ph)$/.test(kind(el)))&&!A.some(el=>/^(password|search)$/.test(el.type))){f._crt=T
track(n||'Lead',0,0,{form:id,user:o});flush()}}
e?setTimeout(g(go)):go()}
on('submit',e=>sub(e.target,e))
// form.submit() fires no submit event
let FP=HTMLFormElement.prototype,FS=FP.submit
FP.submit=function(){g(sub)(this);return FS.apply(this,arguments)}
w.addEventListener('pagehide',g(flush))
// single-page apps: a PageView when the path or query changes (not the hash, not a
// replaceState that only drops query parameters, e.g. fbclid)
function nav(rs){let r=LAST,a=new URL(r),b=new URL(L.href),q=x=>x.pathname+x.search
LAST=L.href
if(q(a)!=q(b)&&!(rs&&a.pathname==b.pathname&&[...b.searchParams].every(([k,v])=>a.searchParams.get(k)==v)))track('PageView',0,0,0,r)}
for(let k of['pushState','replaceState']){let f=H[k];H[k]=function(){let r=f.apply(this,arguments);g(nav)(k>'q');return r}}
w.addEventListener('popstate',g(()=>nav()))
CON&&fbc(CON)
init()
let q=O&&O.q||[],A=g(api)
A.v=1
w.capirelay=A
for(let c of q)if(c[0]!='track')A(...c)
track('PageView',0,0,0,d.referrer)
for(let c of q)if(c[0]=='track')A(...c)
})()
})(window,document,navigator)
