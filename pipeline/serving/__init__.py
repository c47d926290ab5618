"""What app servers run to know the current release: manifest sources (file, bucket,
CDN URL; pinned or followed) and the background refresher. Framework-neutral."""
