mkdir -p t/dir/sub
echo one > t/dir/one
echo two > t/dir/sub/two
ln -s one t/dir/link
ln t/dir/one t/dir/hard
chmod 0640 t/dir/one
chmod 0711 t/dir/sub
tar --sort=name --mtime=@1600000000 --owner=1001 --group=1002 --numeric-owner -C t -cf layer.tar .
rm -rf t
