package s3_test

import "depot/nameserver/nsclient"

func nsUser(ak, secret string) nsclient.User { return nsclient.User{AccessKey: ak, Secret: secret} }
