//! The dashboard's words in English and Turkish (the report's two languages, whose numbers and
//! findings come from `tollgate_report::i18n`), and which one a visitor gets: a `lang` cookie set
//! by the switch, else the browser's `Accept-Language`.

use axum::http::HeaderMap;
use serde_json::{Map, Value};
use tollgate_report::Lang;

/// The cookie the language switch sets (a preference, not a secret).
pub const LANG_COOKIE: &str = "tollgate_lang";

/// Every phrase the pages use: (name, English, Turkish).
const PHRASES: &[(&str, &str, &str)] = &[
    ("title", "tollgate dashboard", "tollgate paneli"),
    ("sign_in", "Sign in", "Giriş yap"),
    ("sign_out", "Sign out", "Çıkış yap"),
    (
        "key_label",
        "Master key or virtual key",
        "Ana anahtar ya da sanal anahtar",
    ),
    (
        "key_hint",
        "The key is sent once and never kept in the browser; a session cookie stands for it.",
        "Anahtar bir kez gönderilir ve tarayıcıda saklanmaz; yerine bir oturum çerezi kullanılır.",
    ),
    ("bad_key", "That key was not accepted", "Bu anahtar kabul edilmedi"),
    (
        "too_many",
        "Too many failed sign-ins from this address; try again later",
        "Bu adresten çok fazla başarısız giriş; daha sonra yeniden deneyin",
    ),
    ("overview", "Overview", "Genel bakış"),
    ("logs", "Logs", "Kayıtlar"),
    ("keys", "Keys", "Anahtarlar"),
    ("signed_in_as", "Signed in as", "Giriş yapan"),
    ("admin", "admin (master key)", "yönetici (ana anahtar)"),
    ("range", "Range", "Aralık"),
    ("findings", "Findings", "Bulgular"),
    (
        "no_findings",
        "Nothing to point out for this range.",
        "Bu aralık için dikkat çeken bir şey yok.",
    ),
    ("requests", "Requests", "İstekler"),
    ("success_rate", "Success rate", "Başarı oranı"),
    ("cost", "Cost", "Maliyet"),
    ("tokens", "Tokens", "Token"),
    ("input", "input", "girdi"),
    ("cache_read", "cache read", "önbellekten okunan"),
    ("cache_write", "cache write", "önbelleğe yazılan"),
    ("output", "output", "çıktı"),
    ("reasoning", "reasoning", "akıl yürütme"),
    ("cache_hit_rate", "Cache hit rate", "Önbellek isabet oranı"),
    ("saved", "saved", "tasarruf"),
    ("overhead", "Gateway overhead", "Ağ geçidi ek yükü"),
    ("latency", "Latency", "Gecikme"),
    ("by_model", "By model", "Modele göre"),
    ("model", "Model", "Model"),
    ("failed", "failed", "başarısız"),
    ("over_time", "Over time", "Zaman içinde"),
    ("no_records", "No records in this range.", "Bu aralıkta kayıt yok."),
    ("filter", "Filter", "Süz"),
    ("any", "any", "hepsi"),
    ("key", "Key", "Anahtar"),
    ("status", "Status", "Durum"),
    ("cache", "Cache", "Önbellek"),
    ("request_id", "Request id", "İstek kimliği"),
    ("time", "Time", "Zaman"),
    ("next_page", "Older →", "Daha eski →"),
    ("first_page", "← Newest", "← En yeni"),
    ("attempt", "Attempt", "Deneme"),
    ("usage", "Usage", "Kullanım"),
    ("bucket", "Bucket", "Kova"),
    ("total", "Total", "Toplam"),
    ("ttft", "time to first token", "ilk token süresi"),
    ("upstream", "upstream", "sağlayıcı"),
    ("error", "Error", "Hata"),
    ("alias", "Alias", "Takma ad"),
    ("spend", "Spend", "Harcama"),
    ("budget", "Budget", "Bütçe"),
    ("models_allowed", "Models", "Modeller"),
    ("all_models", "all", "hepsi"),
    ("blocked", "blocked", "engelli"),
    ("active", "active", "etkin"),
    ("block", "Block", "Engelle"),
    ("unblock", "Unblock", "Engeli kaldır"),
    ("delete", "Delete", "Sil"),
    ("create_key", "Create a key", "Anahtar oluştur"),
    ("max_budget", "Max budget (USD)", "Azami bütçe (USD)"),
    (
        "models_hint",
        "comma-separated; empty = all",
        "virgülle ayrılmış; boş = hepsi",
    ),
    ("create", "Create", "Oluştur"),
    (
        "new_key_once",
        "The new key, shown this once: copy it now.",
        "Yeni anahtar yalnızca bu kez gösterilir: şimdi kopyalayın.",
    ),
    ("copy", "Copy", "Kopyala"),
    (
        "forbidden",
        "Only the master key may open this page.",
        "Bu sayfayı yalnızca ana anahtar açabilir.",
    ),
    ("not_found", "No such record.", "Böyle bir kayıt yok."),
    ("records_from", "Records from", "Kayıtların kaynağı"),
    ("store_local", "this instance (SQLite)", "bu örnek (SQLite)"),
    (
        "store_shared",
        "shared store (Postgres): every instance",
        "paylaşılan depo (Postgres): tüm örnekler",
    ),
    ("language", "Language", "Dil"),
    ("back", "Back", "Geri"),
    ("created", "Created", "Oluşturulma"),
    ("steps", "Workflow steps", "İş akışı adımları"),
    ("workflow", "Workflow", "İş akışı"),
    ("session", "Session", "Oturum"),
    ("user", "User", "Kullanıcı"),
    ("team", "Team", "Takım"),
    ("custom", "custom", "özel"),
    ("since", "From", "Başlangıç"),
    ("until", "To", "Bitiş"),
    ("show", "Show", "Göster"),
    ("playground", "Playground", "Deneme alanı"),
    ("full_report", "The full report", "Raporun tamamı"),
    (
        "building",
        "The report for this range is being computed over its records; this page reloads when it is ready.",
        "Bu aralığın raporu kayıtları üzerinden hesaplanıyor; hazır olunca sayfa yeniden yüklenir.",
    ),
    ("figures_for", "Figures for", "Rakamların aralığı"),
    ("as_of", "as of", "hesaplanma zamanı"),
    ("seconds_ago", "s ago", "sn önce"),
    (
        "kept_snapshot",
        "kept from an earlier visit (this range is large)",
        "önceki bir ziyaretten saklandı (bu aralık büyük)",
    ),
    (
        "refreshing",
        "a newer one is being computed",
        "daha yenisi hesaplanıyor",
    ),
    ("refresh", "Refresh", "Yenile"),
    ("save", "Save", "Kaydet"),
    ("models", "Models", "Modeller"),
    ("config", "Config", "Yapılandırma"),
    ("version", "version", "sürüm"),
    ("warnings", "warning(s)", "uyarı"),
    (
        "reload_failed",
        "The last reload failed; the previous config still serves",
        "Son yeniden yükleme başarısız; önceki yapılandırma hizmet vermeye devam ediyor",
    ),
    (
        "reload_ok",
        "The config on disk is the one serving.",
        "Diskteki yapılandırma hizmet veren yapılandırmadır.",
    ),
    ("deployment", "Deployment", "Dağıtım"),
    ("context", "Context (in / out)", "Bağlam (girdi / çıktı)"),
    ("health", "Health", "Sağlık"),
    ("cooling_down", "cooling down", "soğumada"),
    ("in_flight", "in flight", "süren"),
    ("workflows", "Workflows", "İş akışları"),
    ("fallbacks", "fallbacks", "yedekler"),
    ("regenerate", "Regenerate", "Yenile"),
    ("open", "open", "aç"),
    ("prompt", "Prompt", "İstem"),
    ("send", "Send", "Gönder"),
    ("answer", "Answer", "Yanıt"),
    ("users", "Users", "Kullanıcılar"),
    ("teams", "Teams", "Takımlar"),
    ("create_user", "Create a user", "Kullanıcı oluştur"),
    ("create_team", "Create a team", "Takım oluştur"),
    ("user_id", "User id", "Kullanıcı kimliği"),
    ("team_id", "Team id", "Takım kimliği"),
    ("email", "Email", "E-posta"),
    ("id_hint", "empty = generated", "boş = otomatik"),
    ("budget_duration", "Budget period", "Bütçe dönemi"),
    ("duration_hint", "30d, 1mo…", "30d, 1mo…"),
    ("period", "Period", "Dönem"),
    ("every", "every", "her"),
    ("limits", "Limits", "Sınırlar"),
    ("budget_and_limits", "Budget and limits", "Bütçe ve sınırlar"),
    ("tpm_limit", "Tokens per minute", "Dakika başına token"),
    ("rpm_limit", "Requests per minute", "Dakika başına istek"),
    ("max_parallel", "Parallel requests at most", "En fazla eşzamanlı istek"),
    ("parallel", "parallel", "eşzamanlı"),
    (
        "empty_clears",
        "An emptied budget or limit field removes it.",
        "Boşaltılan bütçe ya da sınır alanı onu kaldırır.",
    ),
    ("with_key", "with a key", "bir anahtarla"),
    (
        "new_user_key_once",
        "The new user's key, shown this once: copy it now.",
        "Yeni kullanıcının anahtarı yalnızca bu kez gösterilir: şimdi kopyalayın.",
    ),
    (
        "user_delete_note",
        "Deleting a user deletes its keys too.",
        "Bir kullanıcıyı silmek anahtarlarını da siler.",
    ),
    (
        "team_delete_note",
        "Its keys are deleted too.",
        "Anahtarları da silinir.",
    ),
    (
        "team_block_note",
        "A blocked team's keys are refused.",
        "Engellenen takımın anahtarları reddedilir.",
    ),
    ("members", "Members", "Üyeler"),
    ("role", "Role", "Rol"),
    ("role_user", "user", "kullanıcı"),
    ("role_admin", "admin", "yönetici"),
    ("add_member", "Add", "Ekle"),
    ("remove", "Remove", "Çıkar"),
    ("no_users", "No users yet.", "Henüz kullanıcı yok."),
    ("no_teams", "No teams yet.", "Henüz takım yok."),
    ("pages", "Pages", "Sayfalar"),
    ("page", "Page", "Sayfa"),
    ("previous", "← Previous", "← Önceki"),
    ("next", "Next →", "Sonraki →"),
    (
        "cost_per_bucket",
        "The request, with its cost per bucket",
        "İstek ve kova başına maliyeti",
    ),
];

/// The phrases of one language, by name, for the templates.
pub fn phrases(lang: Lang) -> Map<String, Value> {
    PHRASES
        .iter()
        .map(|(name, en, tr)| (name.to_string(), Value::from(lang.pick(en, tr))))
        .collect()
}

/// `en` or `tr`, as the switch and the cookie write it.
pub fn code(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::Tr => "tr",
    }
}

pub fn parse(code: &str) -> Option<Lang> {
    match code.trim().to_ascii_lowercase().as_str() {
        "en" => Some(Lang::En),
        "tr" => Some(Lang::Tr),
        _ => None,
    }
}

/// The language of a request: `?lang=` (the switch), the cookie, then the browser's preference.
pub fn choose(query: Option<&str>, cookie: Option<&str>, headers: &HeaderMap) -> Lang {
    query
        .and_then(parse)
        .or_else(|| cookie.and_then(parse))
        .or_else(|| from_accept_language(headers))
        .unwrap_or_default()
}

/// The supported language the browser ranks highest (`tr-TR,tr;q=0.9,en;q=0.8`).
fn from_accept_language(headers: &HeaderMap) -> Option<Lang> {
    let header = headers.get("accept-language")?.to_str().ok()?;
    let mut best: Option<(f32, Lang)> = None;
    for part in header.split(',') {
        let mut fields = part.split(';');
        let tag = fields.next().unwrap_or("").trim();
        let primary = tag.split('-').next().unwrap_or("");
        let Some(lang) = parse(primary) else { continue };
        let q = fields
            .filter_map(|f| f.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if best.is_none_or(|(b, _)| q > b) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("accept-language", v.parse().unwrap());
        h
    }

    #[test]
    fn the_browser_language_is_read_with_its_weights() {
        assert_eq!(choose(None, None, &accept("tr-TR,tr;q=0.9,en;q=0.8")), Lang::Tr);
        assert_eq!(choose(None, None, &accept("de-DE,en;q=0.5,tr;q=0.4")), Lang::En);
        assert_eq!(choose(None, None, &accept("en;q=0.3, tr;q=0.7")), Lang::Tr);
        assert_eq!(choose(None, None, &accept("fr")), Lang::En, "the default");
        // The switch wins over the cookie, the cookie over the browser.
        assert_eq!(choose(Some("en"), Some("tr"), &accept("tr")), Lang::En);
        assert_eq!(choose(None, Some("tr"), &accept("en")), Lang::Tr);
    }

    #[test]
    fn every_phrase_has_both_languages() {
        let mut names = std::collections::HashSet::new();
        for (name, en, tr) in PHRASES {
            assert!(names.insert(*name), "{name} twice");
            assert!(!en.is_empty() && !tr.is_empty(), "{name}");
        }
        assert_eq!(phrases(Lang::Tr)["sign_in"], "Giriş yap");
        assert_eq!(phrases(Lang::En)["sign_in"], "Sign in");
    }
}
