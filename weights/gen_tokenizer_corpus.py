#!/usr/bin/env python3
"""Generate tests/data/tokenizer/corpus.txt: prompts that look like real Stable Diffusion prompts,
plus generated edge cases, one per line as "category<TAB>escaped prompt".

Regenerate (deterministic, stdlib only):
    python3 weights/gen_tokenizer_corpus.py > tests/data/tokenizer/corpus.txt
then regenerate the goldens with weights/gen_tokenizer_golden.py.

Escapes in the prompt field (everything else is literal UTF-8): \\\\ backslash, \\t, \\n, \\r,
\\uXXXX and \\UXXXXXXXX for a code point (used for control, format and separator characters so
the file survives editors and git). Categories let the test report agreement per kind of text.
"""
import random
import sys
import unicodedata

R = random.Random(20240611)

QUALITY = ["masterpiece", "best quality", "high quality", "ultra detailed", "highly detailed",
           "8k", "4k", "uhd", "hdr", "absurdres", "highres", "sharp focus", "intricate details",
           "photorealistic", "hyperrealistic", "award winning", "professional", "RAW photo",
           "extremely detailed CG unity 8k wallpaper", "official art", "trending on artstation",
           "featured on pixiv", "octane render", "unreal engine 5", "ray tracing", "volumetric lighting"]
SUBJECTS = ["1girl", "1boy", "2girls", "solo", "a cat", "an old man", "a young woman", "a knight",
            "a dragon", "a cyberpunk city", "a cozy cabin", "a red fox", "an astronaut", "a robot",
            "a samurai", "a witch", "a mermaid", "a lighthouse", "a bowl of ramen", "a vintage car",
            "a portrait of a woman", "a wolf howling", "the Eiffel Tower", "a medieval castle",
            "a space station", "a steampunk airship", "a koi pond", "a corgi", "a fantasy landscape"]
TAGS = ["long hair", "short hair", "blonde hair", "blue eyes", "red eyes", "smile", "looking at viewer",
        "upper body", "full body", "standing", "sitting", "outdoors", "indoors", "night", "day",
        "sky", "clouds", "cherry blossoms", "rain", "snow", "sunset", "forest", "city", "street",
        "school uniform", "armor", "dress", "hat", "glasses", "jewelry", "earrings", "flowers",
        "holding sword", "wings", "tail", "animal ears", "cat ears", "twintails", "ponytail",
        "open mouth", "closed eyes", "blush", "freckles", "depth of field", "bokeh", "backlighting",
        "rim light", "cinematic lighting", "dramatic lighting", "soft lighting", "golden hour",
        "wide shot", "close-up", "from above", "from below", "dutch angle", "fisheye", "film grain",
        "chromatic aberration", "lens flare", "motion blur", "watercolor", "oil painting",
        "digital painting", "concept art", "illustration", "anime style", "cel shading", "sketch",
        "line art", "pixel art", "low poly", "isometric", "studio ghibli style", "vaporwave",
        "synthwave", "art nouveau", "baroque", "gothic", "ukiyo-e", "impressionism", "surrealism",
        "bad anatomy", "bad hands", "extra fingers", "lowres", "worst quality", "jpeg artifacts",
        "watermark", "signature", "text", "blurry", "deformed", "mutated", "ugly", "duplicate"]
ARTISTS = ["Greg Rutkowski", "Alphonse Mucha", "Artgerm", "WLOP", "Makoto Shinkai", "Hayao Miyazaki",
           "Gustave Doré", "Zdzisław Beksiński", "Pierre-Auguste Renoir", "Claude Monet",
           "Jean-Léon Gérôme", "Élisabeth Vigée Le Brun", "William-Adolphe Bouguereau",
           "Joaquín Sorolla", "Frida Kahlo", "José Clemente Orozco", "Mikhail Vrubel",
           "Ivan Aivazovsky", "Antonín Chittussi", "Gyula Benczúr", "Albrecht Dürer",
           "Hieronymus Bosch", "Caspar David Friedrich", "Ilya Repin", "Władysław Podkowiński",
           "Hokusai", "Utagawa Hiroshige", "Egon Schiele", "Gustav Klimt", "Moebius", "H.R. Giger",
           "Yoshitaka Amano", "Søren Kierkegaard", "Anders Zorn", "Akseli Gallen-Kallela",
           "Ödön Márffy", "Tamara de Lempicka", "René Magritte", "Salvador Dalí", "Jérôme Bosch",
           "Eugène Delacroix", "Théodore Géricault", "Camille Pissarro", "Édouard Manet",
           "Nicolás de Jesús", "João Ruas", "Çağrı Yılmaz", "Ştefan Luchian", "Mihály Munkácsy"]
CAMERA = ["35mm", "50mm f/1.8", "85mm", "f/2.8", "ISO 100", "1/250s", "Canon EOS 5D Mark IV",
          "Nikon D850", "Sony A7R IV", "Fujifilm XT3", "Kodak Portra 400", "Hasselblad", "GoPro"]
WORDS = ("the of and a to in is it you that he was for on are with as his they be at one have this "
         "from or had by hot but some what there we can out other were all your when up use word how "
         "said an each she which do their time if will way about many then them would write like so "
         "these her long make thing see him two has look more day could go come did my sound no most "
         "number who over know water than call first people may down side been now find any new work "
         "part take get place made live where after back little only round man year came show every "
         "good me give our under name very through just form much great think say help low line "
         "before turn cause same mean differ move right boy old too does tell sentence set three want "
         "air well also play small end put home read hand port large spell add even land here must big "
         "high such follow act why ask men change went light kind off need house picture try us again "
         "animal point mother world near build self earth father head stand own page should country "
         "found answer school grow study still learn plant cover food sun four thought let keep eye "
         "never last door between city tree cross since hard start might story saw far sea draw left "
         "late run don't while press close night real life few stop open seem together next white "
         "children begin got walk example ease paper often always music those both mark book letter "
         "until mile river car feet care second group carry took rain eat room friend began idea fish "
         "mountain north once base hear horse cut sure watch color face wood main enough plain girl "
         "usual young ready above ever red list though feel talk bird soon body dog family direct pose "
         "leave song measure state product black short numeral class wind question happen complete ship "
         "area half rock order fire south problem piece told knew pass farm top whole king size heard "
         "best hour better true during hundred am remember step early hold west ground interest reach "
         "fast five sing listen six table travel less morning ten simple several vowel toward war lay "
         "against pattern slow center love person money serve appear road map science rule govern pull "
         "cold notice voice fall power town fine certain fly unit lead cry dark machine note wait plan "
         "figure star box noun field rest correct able pound done beauty drive stood contain front "
         "teach week final gave green oh quick develop sleep warm free minute strong special mind behind "
         "clear tail produce fact street inch lot nothing course stay wheel full force blue object "
         "decide surface deep moon island foot yet busy test record boat common gold possible plane age "
         "dry wonder laugh thousand ago ran check game shape yes cool miss brought heat snow bed bring "
         "sit perhaps fill east weight language among").split()
EMOJI = ["🐱", "🌸", "✨", "🔥", "💀", "🌙", "⭐", "🎨", "📷", "🌊", "🍜", "🐉", "🦊", "👑", "💎",
         "❤️", "❤", "♥", "☀️", "⚔️", "👩‍🎨", "👨‍👩‍👧", "🏳️‍🌈", "🇯🇵", "🇫🇷", "🇺🇦", "👍🏽", "👋🏿",
         "1️⃣", "#️⃣", "🧙‍♀️", "🫠", "🥹", "🪐", "😀", "😂", "🤖", "👾", "🌈", "🍄", "🌲", "🕯️",
         "©️", "®", "™", "🅰️", "🅱", "🆗", "🈂️", "㊗️"]
CJK = ["一个女孩", "长发", "杰作", "最高质量", "风景", "猫耳", "少女", "桜", "夜景", "東京", "富士山",
       "水彩画", "油絵", "美しい", "かわいい", "ねこ", "アニメ", "イラスト", "サイバーパンク",
       "고양이", "아름다운", "소녀", "풍경", "걸작", "한복", "龍", "鳳凰", "山水画", "仙女",
       "ｶﾞﾝﾀﾞﾑ", "ﾊﾟﾝ", "ＬＯＵＤ", "ＮＯＩＳＥ", "１２３", "！？", "（笑）", "「こんにちは」", "『本』",
       "、", "。", "〜", "・", "ー", "㈱", "㍿", "〇", "々", "ゞ", "㐀", "𠀀", "𪜀"]
CYRILLIC = ["красивая девушка", "портрет", "масло", "ПОРТРЕТ", "Москва", "зима", "лес", "ночь",
            "шедевр", "реализм", "Иван Шишкин", "Айвазовский", "Ёжик в тумане", "Україна", "їжак",
            "ґанок", "Беларусь", "ў", "Србија", "љубав", "ђак", "Македонија", "ѓ", "ќ", "ЪЬ", "щука"]
ARABIC = ["فتاة جميلة", "منظر طبيعي", "لوحة زيتية", "القاهرة", "مَدْرَسَةٌ", "الْحُبُّ", "١٢٣",
          "۱۲۳", "ﷺ", "ﻻ", "تصوير", "سماء", "שלום", "יְרוּשָׁלַיִם", "ציור", "ילדה", "بِسْمِ",
          "گل", "پرنده", "چای", "ژاله", "ڤ", "ـــ"]
GREEK = ["ΟΔΟΣ", "ΟΔΟΣ ΟΔΟΣ.", "Σ", "ΣΑΣ", "ΚΑΛΗΜΕΡΑ ΚΟΣΜΕ", "Ἀθῆναι", "ᾅδης", "ΌΣΟΣ", "ΣΟΦΟΣ'",
         "Σ.Σ", "ΑΣ'Σ", "ΑΣ·Β", "ΑΣ΄", "ΑΣ\u0301", "ΑΣ\u0345", "ΑΣª", "ΑΣ🅰", "ΑΣⓐ", "ΑΣ1", "1Σ",
         "αβγ", "Ωμέγα", "φωτογραφία", "θάλασσα", "ΜΟΥΣΕΙΟ", "ψυχή", "ΑΣ\u200dΒ", "ΑΣ\u00adΒ"]
INDIC = ["नमस्ते", "सुंदर लड़की", "ভারত", "தமிழ்", "తెలుగు", "ಕನ್ನಡ", "മലയാളം", "ગુજરાતી", "ਪੰਜਾਬੀ",
         "ภาษาไทย", "สวัสดี", "ລາວ", "ខ្មែរ", "မြန်မာ", "ქართული", "Հայերեն", "አማርኛ", "ᠮᠣᠩᠭᠣᠯ",
         "Tiếng Việt", "Nguyễn", "phở bò", "đẹp", "ỗ", "ᏣᎳᎩ", "ᐃᓄᒃᑎᑐᑦ", "ⵜⴰⵎⴰⵣⵉⵖⵜ", "𐌰𐌱𐌲"]
PUNCT = ["!!!", "...", "---", "~~~", "@@", "#$%", "<<>>", "||", "(((((", ")))))", "[[[", "]]]",
         "{{}}", "?!", "**", "__", "==", "++", ";;", "::", "//", "\\\\", "^^", "`~`", "''", '""',
         "&&", "<>", "—", "–", "…", "•", "·", "°", "±", "×", "÷", "§", "¶", "†", "‡", "※", "→",
         "←", "↑", "⇒", "∞", "≈", "≠", "≤", "≥", "∑", "∫", "√", "∂", "∆", "★", "☆", "♪", "♫",
         "¿", "¡", "«", "»", "‹", "›", "„", "‚", "¤", "¢", "£", "¥", "€", "₹", "₽", "₿"]
ENTITIES = ["&amp;", "&lt;3", "&gt;", "&quot;hello&quot;", "&#39;", "&#x27;", "&nbsp;", "&copy;",
            "AT&T", "&amp;amp;", "&amp;amp;amp;", "&eacute;", "&EACUTE;", "&Eacute;", "&notit;",
            "&ampxyz", "&copy 2023", "&#128512;", "&#0;", "&#x110000;", "&#1;", "&#59;", "&#x3B;",
            "&#xD800;", "&#128;", "&#x9d;", "&#13;", "&#10;", "&#9;", "&hellip;", "&mdash;",
            "&ndash;", "&rsquo;", "&ldquo;", "&rdquo;", "&lsquo;", "&trade;", "&reg;", "&deg;",
            "&frac12;", "&sup2;", "&times;", "&divide;", "&euro;", "&pound;", "&yen;", "&cent;",
            "&fflig;", "&ffilig;", "&FFILIG;", "&SZLIG;", "&szlig;", "&NTILDE;", "&nTILDE;",
            "&Jscr;", "&HilbertSpace;", "&checkmark;", "&ThickSpace;", "&NewLine;", "&Tab;",
            "&amp", "&lt", "&gt", "&quot", "&AMP", "&LT;", "&foo;", "&#;", "&#x;", "&#12a;",
            "&#0x41;", "&#X41;", "&#065;", "&#00000000000000000000065;", "&#99999999999;",
            "&a;", "&;", "& amp;", "&amp ;", "&&amp;", "&amp&amp;", "&#x26;amp;", "&#38;lt;",
            "&amp;#x26;", "&ampamp;", "&am&#112;;", "&#xFF06;amp;", "&#xFF06;#xFF06;amp;",
            "&alpha;", "&Alpha;", "&ALPHA;", "&Sigma;", "&sigma;", "&sigmaf;", "&zwj;", "&shy;",
            "&lrm;", "&nbsp&nbsp", "&le;", "&ge;", "&ne;", "&infin;", "&hearts;", "&spades;",
            "&oslash;", "&Oslash;", "&aring;", "&aelig;", "&AElig", "&AElig;", "&AELIG;",
            "&thorn;", "&eth;", "&iexcl;", "&iquest;", "&laquo;", "&raquo;", "&bull;", "&middot;"]
CONTRACTIONS = ["don't", "it's", "we're", "they've", "I'm", "you'll", "he'd", "IT'S", "DON'T",
                "WE'RE", "'S", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "''s", "'ll've",
                "rock'n'roll", "o'clock", "ma'am", "y'all", "'tis", "'twas", "ain't", "can't",
                "won't", "shan't", "it'd've", "don’t", "it’s", "we‘re", "’s", "'ſ", "'ſt", "Jack's",
                "Jack’s", "JACK'S", "the 90's", "'90s", "rock 'n' roll", "'Sup", "'D", "'LL",
                "'M", "'RE", "'VE", "'T", "l'amour", "aujourd'hui", "dell'arte", "'s'", "'''s'''"]
QUOTES = ["“quoted”", "‘single’", "‚low‘", "„German“", "‹guillemet›", "«French»", "′prime″",
          "ʼapostrophe", "‛reversed‟", "＂fullwidth＂", "＇fw＇", "``latex''", '"straight"',
          "'straight'", "「corner」", "『white』", "〝double prime〞"]
SPACES = ["\t", "\n", "\r\n", "\r", "  ", "   ", "\u00a0", "\u3000", "\u2028", "\u2029", "\u0085",
          "\u000b", "\u000c", "\u200b", "\ufeff", "\u2002", "\u2003", "\u2009", "\u202f", "\u205f",
          "\u1680", "\u180e", "\u001c", "\u001d", "\u001e", "\u001f"]
CONTROLS = ["\u0001", "\u0002", "\u0007", "\u0008", "\u000e", "\u001b", "\u007f", "\u001b[31m",
            "\u001b[0m", "\u001b[1;32m", "\u001b[K", "\u001b[", "\u001b[12", "\u001b]0;title\u0007",
            "\u0080", "\u0081", "\u0085", "\u008d", "\u0091", "\u0092", "\u0093", "\u0094", "\u0096",
            "\u0097", "\u0099", "\u009d", "\u009f", "\u206a", "\u206f", "\ufff9", "\ufffa", "\ufffb",
            "\ufffc", "\ufffd", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202e",
            "\U000e0001", "\U000e0067", "\u001b[\u0661\u0662m"]
WIDTH = ["ﬁ", "ﬂ", "ﬃ", "ﬄ", "ﬀ", "ﬅ", "ﬆ", "Ĳ", "ĳ", "ŉ", "Ǆ", "ǅ", "ǆ", "Ǉ", "ǈ", "ǉ", "Ǌ",
         "ǋ", "ǌ", "Ǳ", "ǲ", "ǳ", "ＡＢＣ", "ａｂｃ", "１２３", "！", "？", "＆", "＃", "；",
         "＜", "＞", "｜", "＿", "～", "￥", "￠", "￡", "￢", "￣", "￤", "￦", "ｰ", "ﾞ", "ﾟ",
         "ｶﾞ", "ﾊﾟ", "ｱｲｳｴｵ", "ﾎﾞｸ", "ﾡ", "ￂ", "ￚ", "ￜ", "　", "﹏", "︵", "㍻", "㎏", "ℌ",
         "ℓ", "№", "℡", "Ⅻ", "ⅻ", "①", "⑩", "⓪", "ⓐ", "Ⓐ", "㊀", "¼", "½", "²", "³", "¹", "ⁿ"]
UNICODE_EDGE = ["e\u0301", "E\u0301", "a\u0308\u0304", "o\u031b\u0323", "n\u0303", "A\u030a",
                "\u1100\u1161", "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af",
                "\u0041\u0323\u0302", "\u0041\u0302\u0323", "q\u0307\u0323", "\u0345", "a\u0345b",
                "\u03b1\u0345", "ſ", "ſt", "İstanbul", "İ", "ı", "ß", "ẞ", "K", "Ω", "Å",
                "\u037e", "&amp\u037e", "\u1fef", "\u0387", "<\u0338", "=\u0338", ">\u0338",
                "\u2000", "\u2001", "\u0340", "\u0341", "\u0344", "\u0f73", "\u0958", "\ufb2c",
                "\u2adc", "\U0001d15e", "\U0001d160", "ǅ", "ǲ", "ᾼ", "ῼ", "ﬓ", "ŀ", "Ŀ", "ĸ",
                "ʰ", "ª", "º", "ᵃ", "ₐ", "Ⓐ", "🅰", "ꭐ", "ꟸ", "\u0300\u0301", "\u0301a",
                "\u20dd", "a\u20dd", "\u0488", "\u034f", "\u180b", "\ufe0f", "\ufe00", "\u2060",
                "\U0001f3fb", "\U000e007f", "\u0600", "\u06dd", "\u110bd", "\u0e33", "\u0eb3",
                "\u1100\u1100", "\u3131\u314f", "\uffa1", "\ud7b0", "ꥠ", "\u0cbf\u0cd5",
                "\u0b47\u0b3e", "\u0dd9\u0dcf", "\u1b05\u1b35", "\u09c7\u09be", "\u0bc6\u0bbe",
                "\u0915\u093c", "\u0929", "\u00c5\u030a", "\u212b", "\u2126", "\u212a",
                "\u1e9b\u0323", "\u0041\u0306\u0328", "\U0001F1E6\U0001F1E8", "\u00df\u0307"]


def pick(lst, k1, k2):
    return R.sample(lst, min(len(lst), R.randint(k1, k2)))


def sd_tags():
    parts = pick(QUALITY, 1, 4) + pick(SUBJECTS, 1, 2) + pick(TAGS, 3, 12)
    if R.random() < 0.5:
        parts.append("by " + R.choice(ARTISTS))
    if R.random() < 0.3:
        parts += pick(CAMERA, 1, 2)
    R.shuffle(parts[1:])
    sep = R.choice([", ", ",", " , ", ",  ", ", ", ", "])
    return sep.join(parts)


def sd_natural():
    s = "%s %s %s" % (R.choice(["", "a photo of", "a painting of", "an illustration of", "portrait of",
                                "a close-up of", "concept art of", "a render of"]),
                      R.choice(SUBJECTS), " ".join(R.sample(WORDS, R.randint(3, 12))))
    if R.random() < 0.6:
        s += ", by " + " and ".join(R.sample(ARTISTS, R.randint(1, 3)))
    if R.random() < 0.6:
        s += ", " + ", ".join(pick(QUALITY, 1, 4))
    return s.strip()


def emphasis():
    t = pick(TAGS + SUBJECTS + QUALITY, 3, 8)
    out = []
    for x in t:
        r = R.random()
        if r < 0.2:
            x = "(%s:%.1f)" % (x, R.uniform(0.3, 1.8))
        elif r < 0.35:
            x = "(" * R.randint(1, 4) + x + ")" * R.randint(1, 4)
        elif r < 0.45:
            x = "[" * R.randint(1, 3) + x + "]" * R.randint(1, 3)
        elif r < 0.5:
            x = "\\(%s\\)" % x
        elif r < 0.55:
            x = "{%s}" % x
        elif r < 0.6:
            x = "<lora:%s_v%d:%.2f>" % (x.replace(" ", "_"), R.randint(1, 9), R.uniform(0, 1))
        elif r < 0.65:
            x = "[%s:%s:%.1f]" % (x, R.choice(TAGS), R.uniform(0, 1))
        elif r < 0.7:
            x = "[%s|%s]" % (x, R.choice(TAGS))
        elif r < 0.75:
            x = "%s BREAK" % x
        elif r < 0.8:
            x = "%s AND %s" % (x, R.choice(TAGS))
        elif r < 0.85:
            x = "embedding:%s" % x.replace(" ", "_")
        out.append(x)
    return ", ".join(out)


def artists():
    a = R.choice(ARTISTS)
    form = R.choice(["NFC", "NFD", "NFC", "upper"])
    if form == "NFD":
        a = unicodedata.normalize("NFD", a)
    elif form == "upper":
        a = a.upper()
    return R.choice(["art by %s", "by %s, %s", "%s style", "in the style of %s and %s", "%s"]).replace(
        "%s", a, 1).replace("%s", R.choice(ARTISTS))


def numbers():
    f = R.choice([lambda: "%dk" % R.choice([2, 4, 8, 16]), lambda: "%dx%d" % (R.randint(64, 4096), R.randint(64, 4096)),
                  lambda: "seed %d" % R.randint(0, 2**32), lambda: "%.2f" % R.uniform(-10, 10),
                  lambda: "%d%%" % R.randint(0, 100), lambda: "f/%.1f" % R.uniform(1, 22),
                  lambda: "%dmm" % R.randint(8, 800), lambda: "19%02d" % R.randint(0, 99),
                  lambda: "%d girls" % R.randint(1, 9), lambda: "3D", lambda: "v%d.%d" % (R.randint(0, 9), R.randint(0, 99)),
                  lambda: "1/%ds" % R.randint(1, 8000), lambda: "#%06x" % R.randint(0, 2**24),
                  lambda: "0x%X" % R.randint(0, 2**32), lambda: "1e-%d" % R.randint(1, 9),
                  lambda: "¹²³ ⁴⁵", lambda: "½ ¾", lambda: "Ⅳ Ⅻ", lambda: "٣ ۴ ५ ๕", lambda: "①②"])
    return " ".join([f() for _ in range(R.randint(1, 5))] + pick(TAGS, 0, 3))


def mix(lst, k1, k2, joiners=(" ", ", ", "", ",")):
    j = R.choice(joiners)
    return j.join(pick(lst, k1, k2) + pick(TAGS, 0, 3))


def whitespace():
    parts = pick(TAGS + WORDS, 2, 6)
    out = R.choice(["", R.choice(SPACES)])
    for p in parts:
        out += p + R.choice(SPACES) * R.randint(1, 2)
    return out


def controls():
    parts = pick(TAGS + WORDS, 2, 5)
    return "".join(p + R.choice(CONTROLS) * R.randint(0, 2) for p in parts)


def entities():
    parts = pick(ENTITIES, 1, 4) + pick(TAGS + WORDS, 1, 4)
    R.shuffle(parts)
    s = R.choice([" ", "", ", "]).join(parts)
    r = R.random()
    if r < 0.1:
        s += " <b>"  # a literal '<' turns ftfy's unescaping off for that line
    elif r < 0.2:
        s = "x<y\n" + s  # ... and for the lines after it
    elif r < 0.3:
        s = s + "\nx<y " + R.choice(ENTITIES)
    return s


def special_tokens():
    sp = ["<|startoftext|>", "<|endoftext|>", "<|ENDOFTEXT|>", "<|EndOfText|>", "<|endoftext|",
          "<|startoftext", "<start_of_text>", "<end_of_text>", "<END_OF_TEXT>", "<|ſtartoftext|>",
          "<ſtart_of_text>", "&lt;|endoftext|&gt;", "＜｜endoftext｜＞", "<|endoftext|><|endoftext|>",
          "!<|endoftext|>", "<<|endoftext|>", "<|endoftext|>>", "<| endoftext |>", "<|end of text|>",
          "< |endoftext|>", "<|startoftext|>a<|endoftext|>", "<\u200b|endoftext|>", "<|endoftext|>'s"]
    parts = pick(sp, 1, 3) + pick(TAGS, 0, 3)
    R.shuffle(parts)
    return R.choice([" ", "", ", "]).join(parts)


def long_prompt():
    kind = R.random()
    if kind < 0.5:
        return ", ".join(sd_tags() for _ in range(R.randint(4, 20)))
    if kind < 0.65:
        return R.choice(["a", "supercalifragilistic", "ab", "x", "ñ", "猫", "z"]) * R.randint(80, 3000)
    if kind < 0.75:
        return "".join(R.choice("0123456789") for _ in range(R.randint(80, 1000)))
    if kind < 0.85:
        return "".join(R.choice("!?.,;:-_=+*&^%$#@~") for _ in range(R.randint(80, 1000)))
    return " ".join(R.choice(WORDS) for _ in range(R.randint(80, 600)))


def random_mix():
    """Random code points of many kinds (Unicode 14 assigned, so every reference knows them)."""
    pools = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
             (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x1E00, 0x1FFF), (0x2000, 0x206F),
             (0x2070, 0x22FF), (0x2460, 0x24FF), (0x2E80, 0x2FDF), (0x3000, 0x30FF), (0x3130, 0x318F),
             (0x4E00, 0x4EFF), (0xAC00, 0xACFF), (0xFB00, 0xFB4F), (0xFE00, 0xFE6F), (0xFF00, 0xFFEF),
             (0x1D400, 0x1D4FF), (0x1F100, 0x1F1FF), (0x1F300, 0x1F6FF), (0x1F900, 0x1F9FF)]
    out = []
    while len(out) < R.randint(1, 40):
        a, b = R.choice(pools)
        c = chr(R.randint(a, b))
        cat = unicodedata.category(c)
        if cat in ("Cn", "Cs", "Co") or c in "\\":
            continue
        out.append(c)
    return "".join(out)


STRESS = ["&", "#", "x", "X", ";", "amp", "lt", "gt", "quot", "AMP", "1", "2", "9", "3B", "x26", "59",
          "38", "eacute", "a", "m", "p", "\u001b", "[", "\u001b[", "0m", "\r", "\r\n", "\n", " ", "＆",
          "；", "＃", "ａｍｐ", "\u037e", "\u0301", "\u0338", "<", "ﬁ", "’", "“", "\u0092", "\u0085",
          "\u0001", "\u007f", "\ufeff", "\u200b", "\u3000", "ｶ", "ﾞ", "e", "ſ", "'", "Σ", "Α", "İ"]


def ftfy_stress():
    """Random strings over the characters ftfy's fixes act on, to exercise its pass loop."""
    return "".join(R.choice(STRESS) for _ in range(R.randint(1, 30)))


MOJIBAKE_SRC = ["café", "naïve", "Zoë", "“quoted”", "élégant", "voilà le travail", "Beyoncé", "Ångström",
                "résumé", "São Paulo", "Köln", "Dvořák", "Łódź", "crème brûlée", "señor", "…", "—", "€5",
                "don’t", "‘hi’", "ñandú", "Øresund", "½ cup", "°C", "™", "©2023"]


def mojibake():
    s = R.choice(MOJIBAKE_SRC)
    enc = R.choice(["latin-1", "cp1252", "cp1252", "cp437", "macroman", "cp1250", "cp1251"])
    try:
        bad = s.encode("utf-8").decode(enc)
    except UnicodeDecodeError:
        bad = s.encode("utf-8").decode("latin-1")
    return R.choice(["%s", "a photo of %s", "%s, best quality", "%s %s"]).replace("%s", bad, 1).replace(
        "%s", R.choice(TAGS))


EDGE = ["", " ", "  ", "\t", "\n", "\r\n", "a", "A", "1", "'", "<", ">", "&", ";", "#", "\\", "|", ",",
        ".", "'s", "'S", "''", "<|", "|>", "12345678901234567890", "a1b2c3", "a-b_c.d", "...a...",
        "\u00a0", "\u3000", "\u200b", "\ufeff", "\ufeffa", "a\u0301", "\u0301", "🙂", "👩‍👩‍👧‍👦",
        "\u0345", "ſ", "Σ", "ς", "İ", "&amp;", "&lt;", "<&amp;>", "x" * 75, "x " * 75, "x " * 76,
        "x, " * 80, "(" * 100, "a" * 40, "a" * 41, "\u001b[31m\u001b[0m", "\u0085", "\u0080\u0081"]


CATEGORIES = [
    ("sd_tags", sd_tags, 1500), ("sd_natural", sd_natural, 1000), ("emphasis", emphasis, 500),
    ("artists_accents", artists, 300), ("numbers", numbers, 200), ("emoji", lambda: mix(EMOJI, 1, 6), 300),
    ("cjk", lambda: mix(CJK, 1, 6), 300), ("cyrillic", lambda: mix(CYRILLIC, 1, 5), 150),
    ("arabic_hebrew", lambda: mix(ARABIC, 1, 5), 150), ("greek", lambda: mix(GREEK, 1, 4), 150),
    ("indic_sea_misc", lambda: mix(INDIC, 1, 4), 100), ("punct_runs", lambda: mix(PUNCT, 1, 6), 200),
    ("html_entities", entities, 400), ("contractions", lambda: mix(CONTRACTIONS, 1, 5), 200),
    ("quotes", lambda: mix(QUOTES, 1, 4), 150), ("whitespace", whitespace, 200),
    ("control_chars", controls, 200), ("width_ligatures", lambda: mix(WIDTH, 1, 6), 200),
    ("unicode_edge", lambda: mix(UNICODE_EDGE, 1, 4), 300), ("special_tokens", special_tokens, 150),
    ("long", long_prompt, 100), ("random_mix", random_mix, 400), ("ftfy_stress", ftfy_stress, 400),
    ("mojibake", mojibake, 100),
]


def escape(s: str) -> str:
    out = []
    for c in s:
        o = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif c == "\t":
            out.append("\\t")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif o < 0x20 or 0x7F <= o <= 0x9F or unicodedata.category(c) in ("Cf", "Zl", "Zp", "Mn", "Me") \
                or (unicodedata.category(c) == "Zs" and c != " "):
            out.append("\\u%04X" % o if o < 0x10000 else "\\U%08X" % o)
        else:
            out.append(c)
    return "".join(out)


def main():
    # optional, for larger differential runs outside the committed corpus:
    #   gen_tokenizer_corpus.py SEED CATEGORY COUNT
    if len(sys.argv) == 4:
        R.seed(int(sys.argv[1]))
        fn = {name: f for name, f, _ in CATEGORIES}[sys.argv[2]]
        for _ in range(int(sys.argv[3])):
            sys.stdout.write("%s\t%s\n" % (sys.argv[2], escape(fn())))
        return
    w = sys.stdout.write
    w("# clipskip tokenizer corpus v1: category<TAB>prompt; escapes \\\\ \\t \\n \\r \\uXXXX \\UXXXXXXXX\n")
    w("# generated by weights/gen_tokenizer_corpus.py (do not edit by hand)\n")
    for p in EDGE:
        w("edge\t%s\n" % escape(p))
    for name, fn, n in CATEGORIES:
        for _ in range(n):
            w("%s\t%s\n" % (name, escape(fn())))


if __name__ == "__main__":
    main()
