"""The default policy on a labelled text corpus: recall and precision per category.

Texts are written the way people talk in a class and the way speech recognition writes it
(digits as "5, 5, 5", brand names misheard). Run with ``-s`` to see the table.
"""

from __future__ import annotations

from moderation.rules import CATEGORIES, Policy, evaluate_text

OFF, PAY, ABUSE, PII, CUSTOM = "off_platform_contact", "payment_bypass", "abuse", "personal_data", "custom"

# (text, categories it must raise). Empty set: an ordinary lesson that must raise nothing.
CORPUS: list[tuple[str, set[str]]] = [
    # --- off-platform contact: phone numbers, spoken or written, with cues ----------------
    ("Call me on oh four one two, three four five, six seven eight after class.", {OFF}),
    ("My number is double two, triple five, eight nine one.", {OFF}),
    ("Text me at 415-555-2671 tonight.", {OFF}),
    ("You can reach me on 0412 345 678 any time.", {OFF}),
    ("My phone number is 1, 3, 8, 1, 2, 3, 4, 5, 6, 7, 8.", {OFF}),
    ("Give me a call, nine one seven, two two three, four five six seven.", {OFF}),
    ("my mobile is plus 44 20 7946 0958", {OFF}),
    ("WhatsApp me on +86 138 1234 5678", {OFF}),
    ("Here is my cell, 617 555 0199, call me later.", {OFF}),
    ("手机 13812345678", {OFF}),
    ("Teacher's contact: (212) 555-0147", {OFF}),
    ("Let me give you my number. It's eight one eight, five five five, zero one two three.", {OFF}),
    # e-mail, written and spoken
    ("Send me an email at j dot lee at yahoo dot com and we can talk.", {OFF}),
    ("my email is anna.smith@gmail.com", {OFF}),
    ("write to me, tutor underscore mike at hotmail dot com", {OFF}),
    ("Send me an email at jdotleat.com and we can talk.", {OFF}),
    ("My e-mail address is k wang 88 at 163 dot com.", {OFF}),
    # messenger handles and mangled brand names
    ("Add me on WeChat, my WeChat ID is teacher_li.", {OFF}),
    ("Find me on Telegram, my username is tutormike.", {OFF}),
    ("Add me on what's app, my number is the same as before.", {OFF}),
    ("Add me on the onwards, I will send you the notes.", {OFF}),
    ("my Skype account is jenny dot english", {OFF}),
    ("You can message me on Instagram, my handle is @jenny_teaches.", {OFF}),
    ("QQ号 123456789 加我", {OFF}),
    ("Do you have LINE? My line ID is sakura77.", {OFF}),
    # meeting links and invitations
    ("Join my Zoom meeting, the link is zoom dot us slash j slash one two three.", {OFF}),
    ("Next week let's use meet.google.com/abc-defg-hij instead.", {OFF}),
    ("We can continue our lessons outside the platform, it's easier.", {OFF}),
    ("Contact me directly after this class.", {OFF}),
    ("Let's switch to Zoom next time, I will send you the link.", {OFF}),
    ("Give me your WeChat so we can talk.", {OFF}),
    # --- payment bypass --------------------------------------------------------------------
    ("You can pay me directly with PayPal, it is cheaper than the platform.", {PAY}),
    ("Let's skip the platform fee, just do a bank transfer to my account.", {PAY}),
    ("Send the money to my Alipay and I'll give you a discount.", {PAY}),
    ("If you pay with Venmo I can charge you less.", {PAY}),
    ("Don't pay through the platform, pay me in cash.", {PAY}),
    ("We can avoid the commission if you transfer it to my card.", {PAY}),
    ("WeChat Pay is fine for the next ten lessons.", {PAY}),
    ("It's much cheaper outside the app, twenty dollars an hour.", {PAY}),
    # --- abuse -------------------------------------------------------------------------------
    ("You are so stupid, shut up you idiot.", {ABUSE}),
    ("This is fucking boring.", {ABUSE}),
    ("I will kill you if you tell anyone.", {ABUSE}),
    ("you're such a loser, nobody likes you", {ABUSE}),
    ("What the hell is this shit?", {ABUSE}),
    ("Go kill yourself.", {ABUSE}),
    ("you useless moron", {ABUSE}),
    ("I know where you live.", {ABUSE}),
    # --- personal data -----------------------------------------------------------------------
    ("My ID number is one one zero one zero five one nine four nine one two three one zero zero two X.", {PII}),
    ("身份证 11010519491231002X", {PII}),
    ("My social security number is 123-45-6789.", {PII}),
    ("the card number is 4111 1111 1111 1111, expiry next May", {PII}),
    ("Here's my Visa: 4012 8888 8888 1881.", {PII}),
    ("Aadhaar 2345 6789 0124", {PII}),
    ("My credit card is five four five four, five four five four, five four five four, five four five four.", {PII}),
    # --- custom lists ------------------------------------------------------------------------
    ("Let's move our classes to Preply.", {CUSTOM}),
    ("I also teach on italki, it's nice.", {CUSTOM}),
    ("我可以帮你代写论文", {CUSTOM}),
    # --- ordinary lessons: must raise nothing ------------------------------------------------
    ("Open your book to page 42 and read the first paragraph.", set()),
    ("The meeting is at 3 30 tomorrow.", set()),
    ("The meeting is at three thirty tomorrow.", set()),
    ("Seven times eight is fifty six.", set()),
    ("7 times 8 is 56.", set()),
    ("In 1969 the moon landing happened.", set()),
    ("In nineteen sixty nine the first men landed on the moon.", set()),
    ("The price is 20 dollars on the platform.", set()),
    ("The price is $20 on the platform.", set()),
    ("Let's count: one, two, three, four, five, six, seven, eight, nine, ten.", set()),
    ("The wars were in 1914, 1918, 1939 and 1945.", set()),
    ("Pi is 3.14159265, remember the first eight digits.", set()),
    ("The population of China is about 1,400,000,000 people.", set()),
    ("What is 123456 times 9? It is 1111104.", set()),
    ("Please submit your homework on the platform before Friday.", set()),
    ("Oh, I see, that's a good question.", set()),
    ("We chat a lot in English class, it's good practice.", set()),
    ("What's up everyone, today we learn about the past tense.", set()),
    ("Draw a line from point A to point B.", set()),
    ("The traffic signal turns red.", set()),
    ("Look at google dot com for the answer.", set()),
    ("The slope of the line is two over three.", set()),
    ("Mr Wang and Mrs Dong are our new neighbours.", set()),
    ("The ovary and the uterus are organs of the body.", set()),
    ("Hitler invaded Poland in 1939.", set()),
    ("Message me on the platform if you have questions.", set()),
    ("Call me Mike, everyone does.", set()),
    ("Your homework is exercises 4, 5, 6 and 7 on page 131.", set()),
    ("Room 1204, building 3, that's where the science lab is.", set()),
    ("The answer is 4 5 6 7 8, the next number in the sequence is 9.", set()),
    ("My favourite number is seven.", set()),
    ("The phone was invented by Alexander Graham Bell in 1876.", set()),
    ("She said her address is 221B Baker Street.", set()),
    ("Email is a useful tool, let's learn how to write a formal email.", set()),
    ("You are so smart, well done!", set()),
    ("Don't be sad, you can do it.", set()),
    ("The ISBN of the book is 978-3-16-148410-0.", set()),
    ("The train leaves at 10 15 and arrives at 11 45.", set()),
    ("I paid 25 dollars for the book on Amazon.", set()),
    ("A double room costs a hundred dollars a night.", set()),
    ("Let's play chess, move your pawn to e4.", set()),
    ("Teams of four, please: team one, team two and team three.", set()),
    ("Zoom in on the picture to see the details.", set()),
    ("This platform is cheaper than a private school.", set()),
]


# A second set, written after the rules and run blind before any change: first pass recall was
# 0.80 (off-platform contact: "my skype is maria.teacher", "give you my personal email") with
# no false positive; the two misses led to a handle cue and an invitation pattern. Kept here so
# the numbers above stay honest about what was tuned on.
ROUND2: list[tuple[str, set[str]]] = [
    ("ok so my number, write it down, seven one eight, two nine three, four four one one", {OFF}),
    ("just text me on 07700 900123 when you're free", {OFF}),
    ("we can do the lessons on skype instead, my skype is maria.teacher", {OFF}),
    ("send me a message on telegram, at maria underscore en", {OFF}),
    ("my wechat is the same as my phone number, one three nine, one one two two, three three four four", {OFF}),
    ("here's my email, lisa 2003 at gmail dot com", {OFF}),
    ("I'll give you my personal email so we don't need the app", {OFF}),
    ("we could meet on google meet, it's free", {OFF}),
    ("let's talk outside this website, it's more flexible", {OFF}),
    ("you can find me on facebook, search for Tom Brown English", {OFF}),
    ("if you pay me via paypal I'll give you two free lessons", {PAY}),
    ("the platform takes thirty percent so let's just do it privately, pay me directly", {PAY}),
    ("I accept zelle or venmo, whatever you prefer for the payment", {PAY}),
    ("transfer the money to my bank account and we continue", {PAY}),
    ("you are the dumbest student I ever had, you're useless", {ABUSE}),
    ("shut your mouth", {ABUSE}),
    ("fuck off", {ABUSE}),
    ("I'm going to hurt you", {ABUSE}),
    ("stop being such a bitch", {ABUSE}),
    ("my ID is 4 4 0 3 0 4 1 9 9 0 0 1 0 1 2 3 4 0", {PII}),
    ("the card is 5555 5555 5555 4444", {PII}),
    ("my SSN is 078-05-1121", {PII}),
    ("you should try cambly, it's better", {CUSTOM}),
    ("the answer to question twelve is four hundred and thirty two", set()),
    ("write the number one million two hundred thousand in digits", set()),
    ("the year two thousand and eight was the Beijing olympics", set()),
    ("her phone is on the table", set()),
    ("my brother's number on the football team is ten", set()),
    ("we will read chapter eleven, pages one hundred to one hundred and twenty", set()),
    ("the code for the exercise is 4 4 7 2", set()),
    ("Can you repeat after me: my phone number is...", set()),
    ("what's your phone number? that's a question we practise in unit three", set()),
    ("add five and seven and you get twelve", set()),
    ("the telephone was a great invention", set()),
    ("she sent an email to her teacher yesterday", set()),
    ("the temperature today is minus five degrees", set()),
    ("the bank is next to the post office", set()),
    ("Can I pay for the course with a credit card on the website?", set()),
    ("The Great Wall is more than 21,000 kilometres long.", set()),
    ("my favourite app is Duolingo", set()),
    ("today we talk about social media like Instagram and TikTok", set()),
    ("I hate Mondays", set()),
    ("this exercise is killing me, it's so hard", set()),
    ("the killer whale is a kind of dolphin", set()),
    ("the ship's captain shot the albatross in the poem", set()),
]

CORPUS += ROUND2


def _measure(policy: Policy) -> tuple[dict[str, dict[str, float]], list[str]]:
    tp = dict.fromkeys(CATEGORIES, 0)
    fp = dict.fromkeys(CATEGORIES, 0)
    fn = dict.fromkeys(CATEGORIES, 0)
    misses: list[str] = []
    for text, expected in CORPUS:
        got = {h.category for h in evaluate_text(text, policy=policy)}
        for c in CATEGORIES:
            if c in got and c in expected:
                tp[c] += 1
            elif c in got:
                fp[c] += 1
                misses.append(f"FP {c}: {text}")
            elif c in expected:
                fn[c] += 1
                misses.append(f"FN {c}: {text}")
    table = {}
    for c in CATEGORIES:
        recall = tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] else 1.0
        precision = tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] else 1.0
        table[c] = {"recall": recall, "precision": precision, "n": tp[c] + fn[c], "fp": fp[c]}
    return table, misses


def test_text_corpus_recall_and_precision() -> None:
    policy = Policy.default()
    table, misses = _measure(policy)
    negatives = sum(1 for _, e in CORPUS if not e)
    print(f"\ntext corpus: {len(CORPUS)} texts ({negatives} ordinary lesson texts)")
    print(f"{'category':<22} {'n':>3} {'recall':>7} {'precision':>9}")
    for c, row in table.items():
        print(f"{c:<22} {row['n']:>3} {row['recall']:>7.2f} {row['precision']:>9.2f}")
    for line in misses:
        print("  ", line)
    for c, row in table.items():
        assert row["recall"] >= 0.85, (c, row, misses)
        assert row["precision"] >= 0.9, (c, row, misses)
