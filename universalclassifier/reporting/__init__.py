"""Reports for people: a small document model (`document`) rendered as markdown (`to_markdown`) and as one
self-contained HTML page with the figures embedded (`to_html`); `write.write_report` writes both."""
