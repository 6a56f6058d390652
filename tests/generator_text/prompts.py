"""Prompts that exercise every rule of dalle-mini's normalizer."""

PROMPTS = [
    # plain and "a photo of"
    "a photo of a cat",
    "A Photo Of An Astronaut Riding A Horse On The Moon",
    "an armchair in the shape of an avocado. an armchair imitating an avocado.",
    "",
    "   ",
    # emoji
    "i ❤️ pizza 🍕",
    "🐶 dog wearing sunglasses 😎 at the beach 🏖",
    "rainbow 🌈🌈🌈 over the city",
    # html entities and tags
    "tom &amp; jerry",
    "salt &amp;amp; pepper",
    "&lt;b&gt;bold&lt;/b&gt; text &quot;quoted&quot;",
    "<p>a <i>painting</i> of a <br/>lighthouse</p>",
    "fish &gt; chips &#39;n&#39; peas",
    # urls
    "a robot, see https://example.com/robot?id=3 for more",
    "http://foo.bar and www.example.com logo",
    # numbers with commas and dots, dates, percentages, money
    "1,000,000 dollars",
    "a crowd of 12,345 people at 3.5 stars",
    "version 2.0.1 of the app, 3.14159 pies",
    "the year 1,999 and 10,00 apples",
    "born 12/25/1999, died 1/2/03",
    "50% off & free $5 shipping * terms apply",
    # hashtags
    "#sunset at the #beach",
    "#sunsetbeach #summer2022 #newyorkcity",
    "#love_nature and #catsofinstagram",
    "#art #NewYork #TBT",
    "a ###triple hashtag",
    "#dog's day out",
    "#3.5 stars #2022",
    # quotes and apostrophes
    "it's a dog's life, isn't it? they'll say we're 'fine'",
    "\"quoted\" and `backticked` and ''doubled''",
    "rock 'n' roll, y'all, o'clock",
    "a sign that says “hello” and ‘goodbye’",
    # unicode, accents, CJK
    "café crème brûlée à la mode",
    "Straße in München, Ærøskøbing",
    "東京の夜景 tokyo at night",
    "富士山 mount fuji",
    "Москва зимой",
    "mojibake: CafÃ© and â€œquotesâ€",
    # repeated characters, roman numerals
    "sooooo cute!!!!!! ??? ......",
    "louis viii and xxxx and hmmmm",
    "aaaa bbbbb 11111 ----- ____",
    # special characters and punctuation
    "black-and-white photo of a t-rex",
    "foo|bar:baz;qux?!=+~{}[](x)",
    "a/b testing, 4/4 time, c:\\path\\to\\file",
    "whitespace\tand\nnewlines   everywhere",
    ", , leading and trailing commas ,,,",
    # person tokens (CC12M) and wiki references (WIT)
    "<PERSON> playing guitar with <person>",
    "<person> and <person>, <person> at the park",
    "<person> riding a bike, <person> waving",
    "[1] a wiki caption [23]",
    "the eiffel tower [12] in paris",
]
