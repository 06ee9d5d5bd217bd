mkdir -p b/pkg
echo data > b/pkg/data
tar --sort=name --mtime=@1500000000 --owner=0 --group=0 --numeric-owner -C b -czf bundle.tar.gz pkg
rm -rf b
