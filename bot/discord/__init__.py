"""The Discord frontend and poster (discord.py).

app       run_discord(settings, queue): what `imagine serve` enters
client    ImagineBot: the AutoShardedClient with the command tree, buttons and command sync
commands  /imagine /queue /history /cancel and the button clicks
admin     /usage /settings /ban /unban (admins only, checked again server-side)
views     the persistent buttons (DynamicItems routed by custom_id, `bot.buttons`)
embeds    one embed per state of a job: queued, rendering, done, failed, cancelled
sync      sync the slash commands only when their definitions changed
poster    DiscordPoster: the generator posts progress and results over REST
"""
