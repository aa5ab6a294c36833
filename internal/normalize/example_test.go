package normalize_test

import (
	"fmt"

	"github.com/capirelay/capirelay/internal/normalize"
)

func ExampleNormalize() {
	o := normalize.Options{Region: "us"}
	for _, v := range []struct {
		f   normalize.Field
		raw string
	}{
		{normalize.Phone, "(650) 555-1212"},
		{normalize.DateOfBirth, "2/16/1997"},
		{normalize.State, "California"},
		{normalize.LastName, "van der Berg"},
	} {
		n, _ := normalize.Normalize(v.f, v.raw, o)
		fmt.Println(v.f, n)
	}
	// Output:
	// ph 16505551212
	// db 19970216
	// st ca
	// ln vanderberg
}

func ExampleHashUserData() {
	in := normalize.UserData{
		Em:      []string{"John_Smith@gmail.com", " john_smith@GMAIL.com", "not-an-email"},
		Ph:      []string{"020 7946 0958"},
		Country: []string{"United Kingdom"},
	}
	out := normalize.HashUserData(&in, normalize.Options{Region: "us"})
	fmt.Println(len(out.Em), out.Em[0])
	fmt.Println(len(out.Ph), out.Country) // sha256("gb")
	// Output:
	// 1 62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f
	// 1 [0b407281768f0e833afef47ed464b6571d01ca4d53c12ce5c51d1462f4ad6677]
}
